"""Earlier versions of each deployment spec, kept under the data dir for rollback.

``{data_dir}/controller/history/{deployment}/v{version}.yaml``: one file per version the
controller published, written atomically, in the same YAML users write.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import yaml

from edge.graph import DeploymentSpec, load_spec
from edge.storage import write_atomic
from edge.topics import is_valid_id, validate_id

__all__ = ["SpecHistory"]

_VERSION = re.compile(r"\Av(\d+)\.yaml\Z")


class SpecHistory:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _dir(self, deployment: str) -> Path:
        return self.directory / validate_id(deployment, "deployment id")

    def save(self, spec: DeploymentSpec) -> Path:
        path = self._dir(spec.id) / f"v{spec.version}.yaml"
        write_atomic(path, yaml.safe_dump(spec.to_dict(), sort_keys=False, allow_unicode=True).encode())
        return path

    def versions(self, deployment: str) -> list[int]:
        folder = self._dir(deployment)
        if not folder.is_dir():
            return []
        return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _VERSION.match(p.name)))

    def previous(self, deployment: str, version: int) -> int | None:
        """The newest saved version before ``version``, if any."""
        older = [v for v in self.versions(deployment) if v < version]
        return older[-1] if older else None

    def get(self, deployment: str, version: int) -> DeploymentSpec:
        path = self._dir(deployment) / f"v{version}.yaml"
        if not path.exists():
            raise KeyError(f"no version {version} of {deployment!r} (have: {self.versions(deployment) or 'none'})")
        return load_spec(path)

    # -- listing and forgetting (added for the control panel's deployments page) -------------------
    def deployments(self) -> list[str]:
        """The deployments with at least one saved version."""
        if not self.directory.is_dir():
            return []
        return sorted(p.name for p in self.directory.iterdir() if p.is_dir() and is_valid_id(p.name)
                      and self.versions(p.name))

    def forget(self, deployment: str) -> int:
        """Delete every saved version of a deployment; returns how many there were."""
        folder = self._dir(deployment)
        versions = self.versions(deployment)
        for version in versions:
            (folder / f"v{version}.yaml").unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            folder.rmdir()
        return len(versions)
