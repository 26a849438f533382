"""Built-in task types. Each is written exactly as a third party would write one, on ``edge`` only."""

__all__: list[str] = []
