#!/usr/bin/env python3
"""Opens N keep-alive connections to 127.0.0.1:PORT, makes one request on each, and reports the
serving process's RSS before and after (VmRSS of PID), i.e. the memory an idle connection costs."""
import selectors
import socket
import sys


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    port, count, pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    request = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
    before = rss_kb(pid)
    conns = []
    sel = selectors.DefaultSelector()
    for i in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(request)
        conns.append(s)
        if len(conns) % 500 == 0 or i == count - 1:
            for c in conns[-500:]:  # read the answers so every connection is idle, not mid-request
                c.settimeout(10)
                data = b""
                while b"hello world\n" not in data:
                    chunk = c.recv(4096)
                    if not chunk:
                        raise SystemExit(f"connection closed after {len(conns)} connections")
                    data += chunk
    after = rss_kb(pid)
    per = (after - before) * 1024 / count
    print(f"RSS {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB with {count} idle connections: "
          f"{per:.0f} bytes per connection")
    for c in conns:
        c.close()


if __name__ == "__main__":
    main()
