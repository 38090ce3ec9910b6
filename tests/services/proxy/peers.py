"""Real peers for the egress tests: a DNS server on a loopback UDP port whose answers the
test sets (dnslib), and a TLS certificate for `*.egress.test` signed by a test CA."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from dnslib import AAAA, QTYPE, RCODE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSServer

DOMAIN = "egress.test"


@dataclass
class Zone(BaseResolver):  # type: ignore[misc]
    """name -> the answers it gives, in turn per query type (the last one repeats): a name
    whose answer changes between two lookups is a list of two. Counts the queries per
    (name, type)."""

    answers: dict[str, list[str]] = field(default_factory=dict)
    queries: Counter[tuple[str, str]] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        name = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        reply = request.reply()
        with self._lock:
            self.queries[(name, qtype)] += 1
            addresses = self.answers.get(name)
            if addresses is None:
                reply.header.rcode = RCODE.NXDOMAIN
                return reply
            turn = min(self.queries[(name, qtype)], len(addresses))
            answer = ipaddress.ip_address(addresses[turn - 1])
        if qtype == "A" and answer.version == 4:
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(str(answer)), ttl=0))
        if qtype == "AAAA" and answer.version == 6:
            reply.add_answer(RR(request.q.qname, QTYPE.AAAA, rdata=AAAA(str(answer)), ttl=0))
        return reply

    def lookups(self, name: str) -> int:
        """How often `name` was looked up (every lookup asks for its A records)."""
        return self.queries[(name, "A")]


@contextmanager
def dns_server(zone: Zone) -> Iterator[str]:
    """The zone served on a free loopback UDP port: its `ip:port` for
    BROKER_EGRESS_NAMESERVERS."""
    server = DNSServer(zone, address="127.0.0.1", port=0, logger=_Quiet()).server
    # serve_forever's poll interval is how long shutdown() waits (dnslib's thread: 0.5 s)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        host, port = server.server_address
        yield f"{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _Quiet:
    def __getattr__(self, name: str) -> object:
        return lambda *args: None


@dataclass(frozen=True)
class Tls:
    server: ssl.SSLContext
    client: ssl.SSLContext
    """Trusts the test CA only."""


def tls_for(directory: Path, names: list[str]) -> Tls:
    """A CA and a server certificate for `names` (DNS names or IP literals)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "egress test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = directory / "server.pem", directory / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(
        cadata=ca.public_bytes(serialization.Encoding.PEM).decode("ascii")
    )
    return Tls(server=server, client=client)
