"""Wire models shared by the API and the SDK: pydantic only, no SQLAlchemy or FastAPI."""

__all__: list[str] = []
