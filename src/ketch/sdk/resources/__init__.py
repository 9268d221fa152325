"""SDK resource groups: ``client.ous``, ``client.accounts``, ..."""

__all__: list[str] = []
