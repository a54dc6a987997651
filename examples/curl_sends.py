"""See what a program sends and receives on its sockets, as text.

    mrhooker examples/curl_sends.py curl -s http://127.0.0.1:8000/
"""
from mrhooker import hook


def _show(direction, fd, data):
    for line in data.decode("latin-1").splitlines() or [""]:
        print("%s fd %d | %s" % (direction, fd, line))


@hook("send")
def send(fd, buf, n, flags):
    sent = send.original(fd, buf, n, flags)
    if sent > 0:
        _show(">>", fd, buf.read(sent))
    return sent


@hook("recv")
def recv(fd, buf, n, flags):
    got = recv.original(fd, buf, n, flags)
    if got > 0:
        _show("<<", fd, buf.read(got))
    return got
