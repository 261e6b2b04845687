#!/usr/bin/env python3
"""TCP echo latency and bulk throughput between two endpoints, for
scripts/multihost-bench.sh (run inside pods' network namespaces with nsenter).
  multihost-netbench.py serve PORT            echo server (and sink for 'bulk')
  multihost-netbench.py rtt HOST PORT N       N round trips of 64 bytes: p50/p99/mean us
  multihost-netbench.py bulk HOST PORT MB     send MB mebibytes: MB/s and Gbit/s
"""
import socket
import statistics
import sys
import threading
import time


def serve(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(16)

    def handle(c):
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        mode = c.recv(1)
        if mode == b"e":  # echo
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
        else:  # sink: count bytes, answer the count when the sender closes
            n = 0
            while True:
                d = c.recv(1 << 20)
                if not d:
                    break
                n += len(d)
        c.close()

    while True:
        c, _ = s.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


def rtt(host, port, n):
    c = socket.create_connection((host, port), timeout=10)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.sendall(b"e")
    msg = b"x" * 64
    samples = []
    for i in range(n + 100):
        t = time.perf_counter_ns()
        c.sendall(msg)
        got = 0
        while got < len(msg):
            got += len(c.recv(64 - got))
        if i >= 100:  # warm-up
            samples.append((time.perf_counter_ns() - t) / 1000.0)
    c.close()
    samples.sort()
    print("rtt_us p50=%.1f p99=%.1f mean=%.1f n=%d" % (
        samples[len(samples) // 2], samples[int(len(samples) * 0.99)],
        statistics.mean(samples), len(samples)))


def bulk(host, port, mib):
    c = socket.create_connection((host, port), timeout=30)
    c.sendall(b"s")
    chunk = b"\0" * (1 << 20)
    t = time.perf_counter()
    for _ in range(mib):
        c.sendall(chunk)
    c.shutdown(socket.SHUT_WR)
    c.recv(1)  # the server closes once it has read everything
    dt = time.perf_counter() - t
    c.close()
    print("bulk MiB/s=%.0f Gbit/s=%.2f MiB=%d s=%.2f" % (mib / dt, mib * 8 * 1.048576 / 1000 / dt, mib, dt))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "serve":
        serve(int(sys.argv[2]))
    elif cmd == "rtt":
        rtt(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "bulk":
        bulk(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
