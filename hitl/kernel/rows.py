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
from django.db.models import Model
from django.db.models.fields import AutoFieldMixin

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

    @cached_property
    def _composed(self) -> tuple[str, list[tuple[str, type, list[str]]]]:
        connection = connections[router.db_for_read(self.model)]
        quote = connection.ops.quote_name
        plan = [("", self.model, ROOT)]
        joins, optional = [], {""}  # paths that may have no row: the root is always there
        for index, path in enumerate(self.related, start=1):
            parent_path, _, name = path.rpartition("__")
            # A parent names its relations before they are named (KeyError otherwise).
            parent_model, parent_alias = {p: (m, a) for p, m, a in plan}[parent_path]
            fk = parent_model._meta.get_field(name)
            alias, target = f"t{index}", fk.related_model
            # Under a parent that may be missing, a child may be missing too (as
            # select_related joins it).
            if fk.null or (parent_path and parent_path in optional):
                optional.add(path)
            kind = "LEFT JOIN" if path in optional else "JOIN"
            joins.append(
                f"{kind} {quote(target._meta.db_table)} {alias} ON {alias}."
                f"{quote(fk.target_field.column)} = {parent_alias}.{quote(fk.column)}"
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
    # Model.__init__ walks every field for every row: skipped where no receiver needs it
    # and the model keeps Django's own from_db (a state machine's remembers its state).
    if model.from_db.__func__ is Model.from_db.__func__:
        instance = instance_from_db_row(model, alias, names, values)
        if instance is not None:
            return instance
    return model.from_db(alias, names, values)


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
    keys set. For models keyed by an automatic id, with plain values (no expressions), in
    the caller's transaction: narrower than bulk_create, and all the hot path needs."""
    if not objs:
        return []
    model = type(objs[0])
    if not isinstance(model._meta.pk, AutoFieldMixin) or any(o.pk is not None for o in objs):
        raise ValueError(f"insert_rows writes new {model.__name__} rows keyed by the database.")
    connection = connections[router.db_for_write(model)]
    returning = f" RETURNING {connection.ops.quote_name(model._meta.pk.column)}"
    with prepared_cursor(connection) as cursor:
        for start in range(0, len(objs), BATCH):
            batch = objs[start : start + BATCH]
            sql, fields = insert_statement(model, len(batch), connection.alias, None)
            cursor.execute(sql + returning, insert_values(batch, fields, connection))
            take_keys(batch, cursor.fetchall(), connection)
    return objs
