#!/usr/bin/env bash
# The whole test suite on a fresh Debian/Ubuntu machine: installs what it needs
# (Mosquitto and Chromium from apt, the project with its test extras from PyPI), then lints,
# type-checks and runs pytest in two workers (pytest-xdist). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
# the control panel's browser tests drive Debian's chromium through Playwright (never `playwright install`)
[ -x /usr/bin/chromium ] || missing+=(chromium)
# ALSA's configuration: audio_output's tests play on its null and file PCMs (no sound card needed)
[ -f /usr/share/alsa/alsa.conf ] || missing+=(libasound2-data)
# screen_capture's tests grab an Xvfb display they start and paint with xsetroot
command -v Xvfb >/dev/null 2>&1 || missing+=(xvfb)
command -v xsetroot >/dev/null 2>&1 || missing+=(x11-xserver-utils)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing ${missing[*]} with apt-get"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# llm: llama-cpp-python, built from source (~17 minutes on 2 cores); pyrnnoise without its dependencies (the
# rnnoise task loads only its C library; the dependencies are ~230 MB of audio and plotting packages)
python3 -m pip install -q --disable-pip-version-check -e ".[all,test,llm]"
python3 -m pip install -q --disable-pip-version-check --no-deps "pyrnnoise>=0.4,<0.5"
python3 -m ruff check .
python3 -m mypy
# two workers (CI has 2 cores; most tests wait on brokers, agents and browsers rather than compute);
# tests sharing a module fixture carry an xdist_group mark and stay on one worker (--dist loadgroup).
# `bash scripts/test.sh -n 0` runs in one process. Tests marked `alone` (timing figures: a page of
# 200 agents built within its bound, a neighbour's frame rate) run afterwards, one at a time, so the
# other worker's load is not what they measure. Either part may select nothing (exit 5) when
# arguments narrow the run, but not both.
status=0
python3 -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadgroup -m "not alone" "$@" || status=$?
alone=0
python3 -m pytest -n 0 -m alone "$@" || alone=$?
if [ "$status" -eq 5 ] && [ "$alone" -ne 5 ]; then status=$alone
elif [ "$status" -eq 0 ] && [ "$alone" -ne 5 ]; then status=$alone
fi
exit "$status"
