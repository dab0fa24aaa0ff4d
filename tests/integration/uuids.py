"""systemd-repart's UUID derivation, written again from its description
(DESIGN.md §5) so the tests check the plugin against an independent
implementation."""
import hmac
import hashlib
import struct
import uuid


def v4(digest: bytes) -> str:
    b = bytearray(digest[:16])
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(b)))


def _hmac(key: str, msg: bytes) -> bytes:
    return hmac.new(uuid.UUID(key).bytes, msg, hashlib.sha256).digest()


def partition_uuid(seed: str, type_uuid: str, k: int = 0) -> str:
    msg = uuid.UUID(type_uuid).bytes + (struct.pack("<Q", k) if k else b"")
    return v4(_hmac(seed, msg))


def disk_uuid(seed: str) -> str:
    return v4(_hmac(seed, b"disk-uuid"))


def fs_uuid(part_uuid: str) -> str:
    return v4(_hmac(part_uuid, b"file-system-uuid"))
