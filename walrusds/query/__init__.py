"""go-datastore queries: the model (spec), and their execution over the index (engine)."""

from walrusds.query.spec import (
    CompareOp,
    Entry,
    Filter,
    KeyCompare,
    KeyPrefix,
    Order,
    QuerySpec,
    ValueCompare,
)

__all__ = ["CompareOp", "Entry", "Filter", "KeyCompare", "KeyPrefix", "Order", "QuerySpec",
           "ValueCompare"]
