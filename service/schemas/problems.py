"""The RFC 9457 problem document every error response carries."""

from __future__ import annotations

from marshmallow import Schema, fields


class FieldProblem(Schema):
    field = fields.String(required=True, metadata={"description": "The field or parameter."})
    message = fields.String(required=True)
    index = fields.Integer(metadata={"description": "Position of the record in `items`."})
    id = fields.String(allow_none=True, metadata={"description": "The record's id, if it had one."})
    line = fields.Integer(metadata={"description": "CSV line number (imports)."})
    location = fields.String(data_key="in", metadata={"description": "query, path or body."})


class Problem(Schema):
    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    errors = fields.List(fields.Nested(FieldProblem))
    request_id = fields.String()
