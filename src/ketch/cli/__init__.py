"""The `ketch` command line (Typer + Rich): a client of the API, like the SDK it uses."""

__all__: list[str] = []
