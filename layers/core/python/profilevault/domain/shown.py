"""The base of models the API shows."""
from pydantic import BaseModel, model_serializer


class Shown(BaseModel):
    """Serialised without the fields that have no value (None), as the API has always shown them; the OpenAPI
    document still lists every field."""

    @model_serializer(mode="wrap")
    def _leave_out_absent(self, handler):  # no return annotation: the schema stays the model's own
        return {k: v for k, v in handler(self).items() if v is not None}
