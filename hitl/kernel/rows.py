"""Hot reads and inserts whose SQL is composed once per process.

The ORM compiles a query again on every call: for a `select_related(...).filter(...)
.first()` that is about a millisecond of CPU here, where running the statement itself costs
a fifth of that. A proposal made three such reads (its agent's key, the policy activation,
its queue) and two such inserts (its decision log row, its resources' index): a third of
its CPU. A `Read` is the same question written once: the columns come from the models, the
WHERE clause is the caller's (its values always parameters), and the rows become model
instances by `Model.from_db`, the related ones cached on their foreign keys as
`select_related` leaves them. `insert_rows` is `bulk_create` for new rows of one model,
with its statement composed once per model and row count.
"""

from dataclasses import dataclass
from functools import cached_property, lru_cache
from types import SimpleNamespace

from django.db import connections, router

from ..internals import (
    adopt_identity,
    column_converters,
    instance_from_db_row,
    prepared_cursor,
)

# The root table is t0 in a WHERE clause; each related path is t1, t2, ... in order.
ROOT = "t0"


@dataclass(frozen=True)
class Read:
    """Rows of `model` by a WHERE clause over t0 (and t1.. for `related`, the forward
    foreign keys to join, "a" or "a__b", as `select_related` names them); `defer` names
    fields ("path.field" for a related one) not to load."""

    model: type
    where: str
    related: tuple[str, ...] = ()
    defer: tuple[str, ...] = ()
    order_by: str = ""
    limit: int | None = None

    @cached_property
    def _composed(self) -> tuple[str, list[tuple[str, type, list[str]]]]:
        connection = connections[router.db_for_read(self.model)]
        quote = connection.ops.quote_name
        plan = [("", self.model, ROOT)]
        joins = []
        for index, path in enumerate(self.related, start=1):
            parent_path, _, name = path.rpartition("__")
            parent_model, parent_alias = next((m, a) for p, m, a in plan if p == parent_path)
            fk = parent_model._meta.get_field(name)
            alias, target = f"t{index}", fk.related_model
            kind = "LEFT JOIN" if fk.null else "JOIN"
            joins.append(
                f"{kind} {quote(target._meta.db_table)} {alias} ON {alias}."
                f"{quote(target._meta.pk.column)} = {parent_alias}.{quote(fk.column)}"
            )
            plan.append((path, target, alias))
        columns, loaded = [], []
        for path, model, alias in plan:
            skip = {d.rpartition(".")[2] for d in self.defer if d.rpartition(".")[0] == path}
            fields = [f for f in model._meta.concrete_fields if f.name not in skip]
            columns += [f"{alias}.{quote(f.column)}" for f in fields]
            converters = [column_converters(f, alias, connection) for f in fields]
            loaded.append((path, model, [f.attname for f in fields], converters))
        # Names come from the models and the clause from code; every value is a parameter.
        table = quote(self.model._meta.db_table)
        sql = f"SELECT {', '.join(columns)} FROM {table} {ROOT} "  # noqa: S608
        sql += " ".join(joins) + f" WHERE {self.where}"
        if self.order_by:
            sql += f" ORDER BY {self.order_by}"
        if self.limit is not None:
            sql += f" LIMIT {int(self.limit)}"
        return sql, loaded

    def all(self, *params) -> list:
        """Every row the clause selects, as instances."""
        sql, loaded = self._composed
        alias = router.db_for_read(self.model)
        with prepared_cursor(connections[alias]) as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        return [self._instance(row, loaded, alias, connections[alias]) for row in rows]

    def first(self, *params):
        """The first row the clause selects, or None."""
        found = self.all(*params)
        return found[0] if found else None

    @staticmethod
    def _instance(row, loaded, alias, connection):
        made, start = {}, 0
        for path, model, names, converters in loaded:
            values = list(row[start : start + len(names)])
            start += len(names)
            for index, (convert, column) in enumerate(converters):
                for converter in convert:
                    values[index] = converter(values[index], column, connection)
            pk_value = values[names.index(model._meta.pk.attname)]
            # A nullable foreign key with no row joined: the relation is None.
            made[path] = None if pk_value is None else _from_row(model, alias, names, values)
            if path:
                parent, _, name = path.rpartition("__")
                if made[parent] is not None:
                    # The descriptor caches it, as select_related does (no query on access).
                    setattr(made[parent], name, made[path])
        return made[""]


def _from_row(model, alias: str, names: list[str], values: list):
    # Model.__init__ walks every field for every row: skipped where no receiver needs it.
    instance = instance_from_db_row(model, alias, names, values)
    return model.from_db(alias, names, values) if instance is None else instance


# Keyed by row count too: a few hundred statements at most (insert_rows batches by BATCH).
@lru_cache(maxsize=512)
def insert_statement(model, count: int, alias: str, unless_taken: str | None = None):
    """`INSERT INTO <model> (<every concrete field but the key>) VALUES ...` for `count`
    rows (ON CONFLICT DO NOTHING on `unless_taken`, a unique field), and those fields."""
    meta, quote = model._meta, connections[alias].ops.quote_name
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    columns = ", ".join(quote(f.column) for f in fields)
    rows = ", ".join([f"({', '.join(['%s'] * len(fields))})"] * count)
    # Names come from the models; every value is a parameter.
    sql = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES {rows}"  # noqa: S608
    if unless_taken is not None:
        sql += f" ON CONFLICT ({quote(meta.get_field(unless_taken).column)}) DO NOTHING"
    return sql, fields


def insert_values(objs: list, fields: list, connection) -> list:
    """The parameters of `insert_statement` for `objs`, as the ORM would save them."""
    return [f.get_db_prep_save(f.pre_save(obj, True), connection) for obj in objs for f in fields]


def take_keys(objs: list, keys, connection) -> list:
    """Give each new row its key (the n-th smallest is the n-th row's: keys are drawn in
    VALUES order) and mark it saved; [] when the keys are not one per row."""
    found = sorted(key for (key,) in keys)
    if len(found) != len(objs):
        return []
    for obj, key in zip(objs, found, strict=True):
        # What adopt_identity reads of a saved instance: its key and its database (an
        # instance loaded with only its key would read its deferred state fields back).
        adopt_identity(obj, SimpleNamespace(pk=key, _state=SimpleNamespace(db=connection.alias)))
    return objs


# Rows per statement: more rows a statement gained nothing, and the composed statements
# cached stay few.
BATCH = 100


def insert_rows(objs: list) -> list:
    """Insert new rows of one model (no history), BATCH rows a statement; returns them,
    keys set."""
    if not objs:
        return []
    model = type(objs[0])
    connection = connections[router.db_for_write(model)]
    returning = f" RETURNING {connection.ops.quote_name(model._meta.pk.column)}"
    with prepared_cursor(connection) as cursor:
        for start in range(0, len(objs), BATCH):
            batch = objs[start : start + BATCH]
            sql, fields = insert_statement(model, len(batch), connection.alias)
            cursor.execute(sql + returning, insert_values(batch, fields, connection))
            take_keys(batch, cursor.fetchall(), connection)
    return objs
