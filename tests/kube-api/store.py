# The object store: one global resourceVersion counter (like the etcd revision), the objects, and a bounded
# history of changes that watches replay from and that reconstructs older snapshots (paging, Exact lists).
# Stored objects are never mutated: every write stores a new dict, so events and readers can share them.
import bisect
import threading


class Expired(Exception):
    def __init__(self, requested, oldest):
        super().__init__("too old resource version: %s (%s)" % (requested, oldest))
        self.requested, self.oldest = requested, oldest


class Change:
    __slots__ = ("rv", "key", "type", "obj", "old")

    def __init__(self, rv, key, etype, obj, old):
        self.rv, self.key, self.type, self.obj, self.old = rv, key, etype, obj, old


class Store:
    def __init__(self, history_size=20000):
        self.cond = threading.Condition(threading.RLock())
        self.rv = 0
        self.objects = {}  # resource key -> {(namespace, name): obj}
        self.uids = {}  # uid -> (resource key, namespace, name)
        self.history = []  # Change, in rv order
        self.history_rvs = []
        self.window_start = 0  # every change with rv > window_start is in history
        self.history_size = history_size
        self.epoch = 0  # bumped to end every open watch

    # all methods expect self.cond to be held by the caller (the API layer serializes writes)
    def bucket(self, key):
        return self.objects.setdefault(key, {})

    def get(self, key, ns, name):
        return self.objects.get(key, {}).get((ns or "", name))

    def next_rv(self):
        self.rv += 1
        return self.rv

    def put(self, key, obj, old):
        """Stores obj (whose metadata.resourceVersion is already self.rv) and records ADDED or MODIFIED."""
        meta = obj["metadata"]
        slot = (meta.get("namespace", ""), meta["name"])
        self.bucket(key)[slot] = obj
        self.uids[meta["uid"]] = (key, slot[0], slot[1])
        self._record(Change(self.rv, key, "MODIFIED" if old is not None else "ADDED", obj, old))

    def remove(self, key, old):
        """Removes old; the DELETED change carries the last stored state with the deletion's rv."""
        rv = self.next_rv()
        meta = old["metadata"]
        self.bucket(key).pop((meta.get("namespace", ""), meta["name"]), None)
        self.uids.pop(meta.get("uid"), None)
        gone = dict(old, metadata=dict(meta, resourceVersion=str(rv)))
        self._record(Change(rv, key, "DELETED", gone, old))
        return gone

    def _record(self, change):
        self.history.append(change)
        self.history_rvs.append(change.rv)
        if len(self.history) > self.history_size:
            drop = max(1, self.history_size // 10)
            self.window_start = self.history_rvs[drop - 1]
            del self.history[:drop]
            del self.history_rvs[:drop]
        self.cond.notify_all()

    def compact(self):
        self.window_start = self.rv
        self.history, self.history_rvs = [], []

    def drop_watches(self):
        self.epoch += 1
        self.cond.notify_all()

    def changes_after(self, rv):
        if rv < self.window_start:
            raise Expired(rv, self.window_start + 1)
        return self.history[bisect.bisect_right(self.history_rvs, rv):]

    def snapshot(self, key, rv):
        """{(ns, name): obj} of one resource as it was at rv (rv >= window_start), by undoing later changes."""
        state = dict(self.objects.get(key, {}))
        if rv >= self.rv:
            return state
        for change in reversed(self.changes_after(rv)):
            if change.key != key:
                continue
            meta = change.obj["metadata"]
            slot = (meta.get("namespace", ""), meta["name"])
            if change.type == "ADDED":
                state.pop(slot, None)
            else:
                state[slot] = change.old
        return state

    def wait(self, after_rv, timeout, epoch):
        """Waits until a change after after_rv, the timeout, or a watch drop; returns (changes, rv, dropped)."""
        if self.rv <= after_rv and self.epoch == epoch and timeout > 0:
            self.cond.wait(timeout)
        return self.changes_after(after_rv), self.rv, self.epoch != epoch

    def dump(self):
        return {"rv": self.rv, "objects": [[list(k), obj] for k, b in self.objects.items() for obj in b.values()]}

    def restore(self, state):
        self.rv = state["rv"]
        self.window_start = self.rv
        for key, obj in state["objects"]:
            meta = obj["metadata"]
            self.bucket(tuple(key))[(meta.get("namespace", ""), meta["name"])] = obj
            self.uids[meta["uid"]] = (tuple(key), meta.get("namespace", ""), meta["name"])
