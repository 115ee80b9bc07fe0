"""Datasets per tenant: which queue a dataset belongs to, and who else may use it.

The rule, whole:

- A dataset belongs to one queue. The first job submitted to publish a new dataset (a
  name the repository does not hold yet) makes it its queue's, at submission: of two
  tenants racing for a new name, the first submission wins and the second is refused.
  The name stays the queue's even if that job never publishes. An admin's job that
  publishes a new dataset makes it the job's queue's too.
- A dataset the repository holds with no owner (added with ``aios data add`` on the
  repository itself, or published before datasets had owners) is no tenant's: only
  admins use it, until an admin assigns it (``aios data own NAME --queue QUEUE``) or
  shares it.
- The owning queue's members read it as a job's input and publish versions of it as a
  job's output; so do the members of a queue it is shared with (``aios data share
  NAME --with QUEUE``), except that a read-only share (``--read-only``) only reads. The
  owner's members and admins share and unshare; admins see and use every dataset.
- To a tenant, a dataset it may not read is absent: an input, a lineage query or a
  dataset page naming it is answered as for a dataset that does not exist. An output
  it may not publish is refused in one message whoever holds the name (another queue,
  no one, or a read-only share).

These rules hold for what goes through the control plane: jobs' inputs and outputs,
the lineage and dataset API, the dashboard. ``aios data …`` works on the repository
itself with its passphrase, which no tenant holds. Jobs are checked at submission: the
stage wrapper resolves ``@latest`` again when the job starts but does not check again,
so a share revoked between a job's submission and its start does not stop that job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aios.control.auth import Principal
from aios.data.datasets import DatasetVersion, check_name, parse_version
from aios.errors import Conflict, Forbidden, InvalidInput, NotFound
from aios.lineage.catalog import DataCatalog
from aios.store import Database, QueueRow
from aios.store.models import DatasetOwnerRow, DatasetShareRow

__all__ = ["DatasetAccess", "DatasetRights", "Share"]


@dataclass(frozen=True, slots=True)
class Share:
    """Dataset access given to the members of ``queue``."""

    queue: str
    read_only: bool
    created_at: float


@dataclass(frozen=True, slots=True)
class DatasetRights:
    """Who dataset ``name`` belongs to (None: no tenant) and whom it is shared with;
    the module's rules as pure functions of them."""

    name: str
    owner: str | None
    shares: tuple[Share, ...] = ()

    def share_of(self, queue: str | None) -> Share | None:
        return next((s for s in self.shares if s.queue == queue), None)

    def owned_by(self, user: Principal) -> bool:
        return user.tenant is not None and user.tenant == self.owner

    def may_read(self, user: Principal) -> bool:
        return user.admin or self.owned_by(user) or self.share_of(user.tenant) is not None

    def claimable(self, exists: bool) -> bool:
        """Whether the name is free: no owner, no share, no version in the repository."""
        return self.owner is None and not self.shares and not exists

    def may_publish(self, user: Principal, exists: bool) -> bool:
        """Whether ``user``'s job may publish a version (``exists``: the repository
        holds one already)."""
        if user.admin or self.owned_by(user) or self.claimable(exists):
            return True
        share = self.share_of(user.tenant)
        return share is not None and not share.read_only

    def may_share(self, user: Principal) -> bool:
        return user.admin or self.owned_by(user)


def _missing(ref: str, what: str) -> InvalidInput:
    """The error for an input ``ref`` whose dataset the caller may not read: the words
    :meth:`DataCatalog.resolve` uses for a dataset the repository does not hold."""
    name, _ = parse_version(ref)
    return InvalidInput(f"{what} {ref}: {NotFound(f'no dataset {name!r}')}")


class DatasetAccess:
    """The rules of the module over the database's owners and shares and the data
    repository's datasets (for whether a name is taken)."""

    def __init__(self, db: Database, catalog: DataCatalog) -> None:
        self.db = db
        self.catalog = catalog

    # -- reading ------------------------------------------------------------------------
    @staticmethod
    def rights(session: Session, name: str) -> DatasetRights:
        owner = session.get(DatasetOwnerRow, name)
        shares = session.scalars(
            select(DatasetShareRow)
            .where(DatasetShareRow.name == name)
            .order_by(DatasetShareRow.queue)
        )
        return DatasetRights(
            name,
            None if owner is None else owner.queue,
            tuple(Share(s.queue, s.read_only, s.created_at) for s in shares),
        )

    def check_read(self, user: Principal, ref: str, what: str) -> None:
        """Refuses input ``ref`` when ``user`` may not read its dataset, in the words of
        a dataset that does not exist (InvalidInput)."""
        name, _ = parse_version(ref)
        if user.admin:
            return
        with self.db.sessions() as session:
            if not self.rights(session, name).may_read(user):
                raise _missing(ref, what)

    def resolve(self, user: Principal, ref: str, what: str) -> DatasetVersion:
        """The version ``ref`` names, for ``user``: as :meth:`DataCatalog.resolve`, and
        a dataset ``user`` may not read is refused as one that does not exist."""
        self.check_read(user, ref, what)
        return self.catalog.resolve(ref, what)

    def readable(self, user: Principal) -> Callable[[str], bool]:
        """Whether ``user`` may read dataset ``name``, for filtering many names (the
        owners and shares are read once)."""
        if user.admin:
            return lambda _: True
        if user.tenant is None:
            return lambda _: False
        with self.db.sessions() as session:
            names = set(
                session.scalars(
                    select(DatasetOwnerRow.name).where(DatasetOwnerRow.queue == user.tenant)
                )
            )
            names.update(
                session.scalars(
                    select(DatasetShareRow.name).where(DatasetShareRow.queue == user.tenant)
                )
            )
        return names.__contains__

    def existing(self, names: Iterable[str]) -> frozenset[str]:
        """Those of ``names`` that the repository holds a version of."""
        wanted = frozenset(names)
        return wanted & self.catalog.names() if wanted else wanted

    # -- publishing ---------------------------------------------------------------------
    def claim(
        self,
        session: Session,
        user: Principal,
        queue: str,
        outputs: Sequence[str],
        existing: frozenset[str],
        where: str,
        now: float,
    ) -> None:
        """Checks, in the submission's transaction, that ``user`` may publish each of
        ``outputs`` (InvalidInput naming the first that may not be), and makes each new
        one ``queue``'s. ``existing``: those the repository held when the job came."""
        for name in outputs:
            rights = self.rights(session, name)
            exists = name in existing
            if not rights.may_publish(user, exists):
                raise InvalidInput(
                    f"{where}outputs: {name}: no dataset {name!r} that queue "
                    f"{user.tenant!r} may publish, and the name is taken: choose another"
                )
            if rights.claimable(exists):
                session.add(DatasetOwnerRow(name=name, queue=queue, created_at=now))
                session.flush()  # the next output or job of the same request sees it

    # -- sharing ------------------------------------------------------------------------
    def _shareable(self, session: Session, user: Principal, name: str) -> DatasetRights:
        """The rights of ``name`` when ``user`` may change them: NotFound when the
        dataset does not exist or ``user`` may not read it, Forbidden when ``user``
        reads it through a share."""
        check_name(name, "dataset")
        rights = self.rights(session, name)
        if not rights.may_read(user):
            raise NotFound(f"no dataset {name!r}")
        if not rights.may_share(user):
            raise Forbidden(
                f"dataset {name!r} belongs to queue {rights.owner!r}: only its members "
                "or an admin may share it"
            )
        if rights.owner is None and not rights.shares and not self.catalog.exists(name):
            raise NotFound(f"no dataset {name!r}")
        return rights

    def sharing(self, user: Principal, name: str) -> DatasetRights:
        """Who ``name`` belongs to and whom it is shared with (its owner's members and
        admins only)."""
        with self.db.sessions() as session:
            return self._shareable(session, user, name)

    def share(
        self, user: Principal, name: str, queue: str, read_only: bool, now: float
    ) -> DatasetRights:
        """Shares ``name`` with ``queue`` (again: changes ``read_only``)."""
        with self._writing() as session:
            rights = self._shareable(session, user, name)
            _check_queue(session, queue)
            if queue == rights.owner:
                raise InvalidInput(f"queue: {queue!r} owns dataset {name!r} already")
            row = session.get(DatasetShareRow, (name, queue))
            if row is None:
                session.add(
                    DatasetShareRow(name=name, queue=queue, read_only=read_only, created_at=now)
                )
            else:
                row.read_only = read_only
            session.flush()
            return self.rights(session, name)

    def unshare(self, user: Principal, name: str, queue: str) -> DatasetRights:
        """Takes ``name``'s share away from ``queue``; jobs already submitted keep it."""
        with self._writing() as session:
            self._shareable(session, user, name)
            row = session.get(DatasetShareRow, (name, queue))
            if row is None:
                raise NotFound(f"dataset {name!r} is not shared with queue {queue!r}")
            session.delete(row)
            session.flush()
            return self.rights(session, name)

    def assign(self, user: Principal, name: str, queue: str, now: float) -> DatasetRights:
        """Makes ``name`` ``queue``'s (an admin only); a share ``queue`` held goes."""
        user.require_admin("assign a dataset to a queue")
        with self._writing() as session:
            self._shareable(session, user, name)
            _check_queue(session, queue)
            row = session.get(DatasetOwnerRow, name)
            if row is None:
                session.add(DatasetOwnerRow(name=name, queue=queue, created_at=now))
            else:
                row.queue = queue
            share = session.get(DatasetShareRow, (name, queue))
            if share is not None:
                session.delete(share)
            session.flush()
            return self.rights(session, name)

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        """A transaction in which a clash with another writer of the same name (two
        admins, or an admin and a job's submission) is a Conflict, not a server error."""
        try:
            with self.db.transaction() as session:
                yield session
        except IntegrityError:
            raise Conflict("the dataset's owner or shares changed meanwhile; try again") from None


def _check_queue(session: Session, queue: str) -> None:
    if session.get(QueueRow, queue) is None:
        raise InvalidInput(f"queue: no queue named {queue!r}")
