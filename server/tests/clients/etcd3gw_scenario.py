"""A put/get/delete/lease/watch/lock scenario with the PyPI client etcd3gw, which speaks only
the JSON gateway. Usage: etcd3gw_scenario.py HOST PORT. Prints "ok" and exits 0 when every
step answers as etcd does; an assertion names the first that does not."""

import sys
import threading
import time

import etcd3gw
from etcd3gw.lock import Lock

host, port = sys.argv[1], int(sys.argv[2])
client = etcd3gw.client(host=host, port=port, timeout=10)

# put, get, prefix, delete (on keys of this run alone)
client.delete_prefix("gw/")
assert client.put("gw/k1", "v1") is True
assert client.put("gw/k2", "v2") is True
assert client.get("gw/k1") == [b"v1"], client.get("gw/k1")
assert client.get("gw/none") == []
values = sorted(value for value, _ in client.get_prefix("gw/"))
assert values == [b"v1", b"v2"], values
assert client.delete("gw/k2") is True
assert client.delete("gw/k2") is False
assert client.create("gw/k1", "again") is False
assert client.create("gw/new", "created") is True
assert client.replace("gw/k1", "v1", "v1b") is True
assert client.replace("gw/k1", "v1", "v1c") is False

# status and members
assert client.status()["header"]["cluster_id"]
assert len(client.members()) == 1

# a lease with a key, refreshed, then revoked (which deletes the key)
lease = client.lease(ttl=30)
assert client.put("gw/leased", "x", lease=lease) is True
assert 0 < lease.ttl() <= 30
assert lease.refresh() == 30
assert lease.keys() == [b"gw/leased"], lease.keys()
assert lease.revoke() is True
assert client.get("gw/leased") == []

# a watch sees puts made after it started
events, cancel = client.watch("gw/watched")
got = []


def collect():
    for event in events:
        got.append(event)
        if len(got) == 2:
            return


reader = threading.Thread(target=collect, daemon=True)
reader.start()
time.sleep(0.5)
client.put("gw/watched", "w1")
client.put("gw/watched", "w2")
reader.join(10)
assert [e["kv"]["value"] for e in got] in ([b"w1", b"w2"], ["w1", "w2"]), got
cancel()

# a lock: held, refused to a second holder, released
first = Lock("gw-lock", ttl=30, client=client)
assert first.acquire() is True
assert first.is_acquired()
second = Lock("gw-lock", ttl=30, client=client)
assert second.acquire() is False
assert first.release() is True
assert second.acquire() is True
assert second.release() is True

print("ok")
