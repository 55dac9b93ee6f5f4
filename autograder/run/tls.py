"""A grading cluster's security: the course's own certificate authority (mutual TLS), the Dask client,
and the check that every worker runs one task at a time.

Only parties holding a certificate of the course's authority (:func:`make_certificates`) reach a
tls:// scheduler; a tcp:// address is refused unless marked insecure.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from pathlib import Path
from typing import Callable

from autograder.errors import CourseError

#: The files of a cluster's certificate folder (:func:`make_certificates`): role -> (certificate, key).
CERT_FILES = {"scheduler": ("scheduler.pem", "scheduler-key.pem"), "worker": ("worker.pem", "worker-key.pem"),
              "client": ("client.pem", "client-key.pem")}


INSECURE_WARNING = ("WARNING: grading on a Dask cluster without TLS ({address}): whoever reaches the scheduler can "
                    "join as a worker and read the batch (reference solutions, hidden inputs, expected outputs), "
                    "forge results or run code on the workers. Use only on a network where every machine and "
                    "user is trusted.")


def make_certificates(folder: Path, days: int = 365) -> list[Path]:
    """A new certificate authority for one course's cluster, and a certificate signed by it for each
    role (scheduler, worker, client), written to ``folder`` (new, 0700; every file 0600).

    The authority's private key is never written: nobody can sign another certificate, so the set is
    exactly what these files grant (to add a machine, copy it the worker's files; to revoke, make a
    new set). Dask does not tell roles apart: each key lets its holder join the cluster."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise CourseError(f"{folder} exists and is not empty: give a new folder for the certificates")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"autograder cluster CA {uuid.uuid4().hex[:8]}")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=days))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))

    def private(name: str, data: bytes) -> Path:
        path = folder / name
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
            f.write(data)
        return path

    written = [private("ca.pem", ca.public_bytes(serialization.Encoding.PEM))]
    for role, (cert_name, key_name) in CERT_FILES.items():
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"autograder cluster {role}")]))
                .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                      ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
                .sign(ca_key, hashes.SHA256()))
        written.append(private(cert_name, cert.public_bytes(serialization.Encoding.PEM)))
        written.append(private(key_name, key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption())))
    return written


def _scheduler_address(address: str) -> str:
    """The scheduler's address, read from a scheduler file if ``address`` is one."""
    if address.endswith(".json") and Path(address).is_file():
        try:
            found = json.loads(Path(address).read_text())["address"]
        except (OSError, ValueError, KeyError, TypeError):
            raise CourseError(f"{address} is not a Dask scheduler file (no address in it)") from None
        if not isinstance(found, str):
            raise CourseError(f"{address} is not a Dask scheduler file (no address in it)")
        return found
    return address


def cluster_security(address: str, certs: str = "", insecure: bool = False):
    """``(scheduler address, distributed.Security)`` to reach ``address``, or CourseError.

    A tls:// address: mutual TLS with the client certificate of ``certs`` (a folder made by
    :func:`make_certificates`) or, without it, Dask's own ``distributed.comm.tls`` settings; a key
    another user could read is refused. Any other address (tcp://, a bare host:port) authenticates
    nobody: refused unless ``insecure``."""
    from distributed.security import Security

    target = _scheduler_address(address)
    scheme = target.split("://", 1)[0].lower() if "://" in target else "tcp"
    if scheme != "tls":
        if not insecure:
            raise CourseError(
                f"refusing the cluster address {target}: without TLS, whoever reaches the scheduler can join as a "
                "worker and receive the batch (reference solutions, hidden inputs), forge results or run code. "
                "Use tls:// with the course's certificates (`autograder cluster-certs DIR`, then --cluster-certs DIR; "
                "README: Grading on a cluster), or pass --insecure-cluster if every machine and user that can "
                "reach it is trusted.")
        return target, Security()
    if certs:
        folder = Path(certs)
        cert, key = (folder / n for n in CERT_FILES["client"])
        files = {"tls_ca_file": folder / "ca.pem", "tls_client_cert": cert, "tls_client_key": key}
        missing = [str(f) for f in files.values() if not f.is_file()]
        if missing:
            raise CourseError(f"the cluster's certificate folder {folder} lacks {', '.join(missing)} "
                              "(make one with `autograder cluster-certs DIR`)")
        security = Security(**{k: str(v) for k, v in files.items()}, require_encryption=True)
    else:
        security = Security(require_encryption=True)  # distributed.comm.tls.{ca-file, client.cert, client.key}
        if not (security.tls_ca_file and security.tls_client_cert):
            raise CourseError(f"{target} needs the cluster's certificates: pass --cluster-certs DIR (a folder made "
                              "by `autograder cluster-certs DIR`) or set Dask's distributed.comm.tls.ca-file and "
                              "distributed.comm.tls.client.cert")
    key = security.tls_client_key or security.tls_client_cert
    if key and "-----BEGIN" not in key and Path(key).is_file() and Path(key).stat().st_mode & 0o077:
        raise CourseError(f"the cluster key {key} can be read by other users of this machine: chmod 600 it "
                          "(whoever reads it can join the cluster)")
    return target, security


def dask_client(address: str, certs: str = "", insecure: bool = False, warn: Callable[[str], None] | None = None):
    """A ``distributed.Client`` for ``address`` (tls://host:8786, or a scheduler file path), authenticated
    as :func:`cluster_security` says. It reads no pickle from the workers: task results must be plain
    data (msgpack); anything else raises when the result is fetched. ``warn`` is told when the
    connection is not authenticated."""
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - a dependency of the project
        raise CourseError("--cluster needs Dask: pip install dask distributed") from None
    import logging

    target, security = cluster_security(address, certs, insecure)
    # A worker's answer that is not plain data is refused (and becomes that submission's outcome):
    # Dask's own report of the refusal, with the worker's text, is not for the terminal.
    logging.getLogger("distributed.protocol.core").setLevel(logging.CRITICAL + 1)
    if warn is not None and not target.lower().startswith("tls://"):
        warn(INSECURE_WARNING.format(address=target))
    try:
        return Client(target, timeout=15, security=security, deserializers=["msgpack"])
    except (OSError, TimeoutError, ValueError, TypeError) as e:  # ValueError: an address Dask cannot use here
        raise CourseError(f"cannot reach the Dask scheduler at {target}: {str(e).splitlines()[0][:200]}") from None


def check_workers(client) -> list[str]:
    """The cluster's worker addresses; each must run one task at a time (the grading of a
    submission kills the processes it started, so two at once in one process would collide)."""
    workers = client.scheduler_info().get("workers", {})
    if not workers:
        raise CourseError("the Dask cluster has no workers: start some with `dask worker ADDRESS --nthreads 1`")
    many = [a for a, w in workers.items() if w.get("nthreads", 1) != 1]
    if many:
        raise CourseError(f"Dask workers {', '.join(sorted(many))} run several tasks at once: start each with "
                          "`dask worker ADDRESS --nthreads 1` (use --nworkers N for N processes per machine)")
    return sorted(workers)
