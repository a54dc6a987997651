"""See what a program sends and receives over TLS, as text, before it is encrypted and after it is decrypted:
OpenSSL's SSL_write and SSL_read, known by name from OpenSSL's headers (libssl-dev).

    mrhooker examples/tls_plaintext.py curl -s https://example.org/
"""
from mrhooker import hook


def _show(direction, data):
    for line in data.decode("latin-1").splitlines() or [""]:
        print("%s tls | %s" % (direction, line))


@hook("SSL_write")
def SSL_write(ssl, buf, num):
    done = SSL_write.original(ssl, buf, num)
    if done > 0:
        _show(">>", buf.read(done))
    return done


@hook("SSL_read")
def SSL_read(ssl, buf, num):
    done = SSL_read.original(ssl, buf, num)
    if done > 0:
        _show("<<", buf.read(done))
    return done
