"""Request validation without rebuilding the serializer for every request.

A DRF serializer deep-copies and binds every declared field each time it is instantiated:
for a proposal (ProposalIn with its nested action, evidence, resources, versions) that is
about 60 field objects, two thirds of the cost of validating it, while running the fields'
own checks is cheap. Fields hold no per-request state while they validate, so each input
serializer is built once per process and its `run_validation` (DRF's own code: the same
checks, defaults and coercions) runs on every body. Errors are left to a fresh serializer,
so a 400 is exactly the one `is_valid(raise_exception=True)` gives, messages and shape.
"""

from threading import Lock

from rest_framework import serializers
from rest_framework.exceptions import ValidationError

_BUILT: dict[type[serializers.Serializer], serializers.Serializer] = {}
_LOCK = Lock()


def _built(serializer_class: type[serializers.Serializer]) -> serializers.Serializer:
    serializer = _BUILT.get(serializer_class)
    if serializer is None:
        with _LOCK:
            serializer = _BUILT.get(serializer_class)
            if serializer is None:
                serializer = serializer_class()
                # Deep-copy and bind every field now, once, not on a request.
                _bind_all(serializer)
                _BUILT[serializer_class] = serializer
    return serializer


def _bind_all(field) -> None:
    if isinstance(field, serializers.ListSerializer):
        _bind_all(field.child)
    elif isinstance(field, serializers.Serializer):
        for child in field.fields.values():
            _bind_all(child)


def validated(serializer_class: type[serializers.Serializer], data) -> dict:
    """`serializer_class(data=data).is_valid(raise_exception=True)`'s validated data, or
    its ValidationError."""
    try:
        return _built(serializer_class).run_validation(data)
    except ValidationError:
        # The answer to bad input is the fresh serializer's own, errors and all.
        serializer = serializer_class(data=data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data
