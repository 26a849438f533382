"""The seed's fn_task, as a user writes it: run as a script, it is an agent offering ``adder``."""

from edge import fn_task


@fn_task()
def adder(a: int, b: int) -> int:
    return a + b


if __name__ == "__main__":
    adder.run_sync()
