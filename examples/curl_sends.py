"""See what a program sends and receives on its sockets, as text.

    mrhooker examples/curl_sends.py curl -s http://127.0.0.1:8000/
"""
import socket

from mrhooker import hook


def _show(direction, fd, data):
    for line in data.decode("latin-1").splitlines() or [""]:
        print("%s fd %d | %s" % (direction, fd, line))


def _pass_on(direction, original, fd, buf, n, flags):
    done = original(fd, buf, n, flags)
    if done > 0:
        _show(direction, fd, buf.read(done))
    return done


@hook("send")
def send(fd, buf, n, flags):
    return _pass_on(">>", send.original, fd, buf, n, flags)


@hook("recv")
def recv(fd, buf, n, flags):
    return _pass_on("<<", recv.original, fd, buf, n, flags)


@hook("connect")
def connect(fd, addr, n):
    sa = addr.cast("struct sockaddr_in")   # its layout from the system headers
    if sa.sin_family == 2:                 # AF_INET
        print("-- fd %d connects to %s:%d" % (fd, socket.inet_ntoa(bytes(sa.sin_addr)), socket.ntohs(sa.sin_port)))
    return connect.original(fd, addr, n)
