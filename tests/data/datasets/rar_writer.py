"""A minimal RAR 4.x writer (store method only) so tests can build real .rar files.

``rar`` itself is non-free and not installable here. RAR 4.x (a.k.a. RAR 2.9/3.x format) with the
"store" method is simple enough to write by hand:

- marker block ``52 61 72 21 1A 07 00`` ("Rar!\\x1a\\x07\\x00");
- archive header: HEAD_CRC(2) HEAD_TYPE=0x73 HEAD_FLAGS(2) HEAD_SIZE(2)=13 RESERVED1(2) RESERVED2(4);
- per entry a file header: HEAD_CRC(2) HEAD_TYPE=0x74 HEAD_FLAGS(2) HEAD_SIZE(2) PACK_SIZE(4)
  UNP_SIZE(4) HOST_OS(1) FILE_CRC(4) FTIME(4, MS-DOS) UNP_VER(1) METHOD(1)=0x30 (store)
  NAME_SIZE(2) ATTR(4) FILE_NAME, then the stored bytes;
- end-of-archive block: HEAD_TYPE=0x7B, HEAD_FLAGS=0x4000, HEAD_SIZE=7.

HEAD_CRC is the low 16 bits of the CRC-32 of the header from HEAD_TYPE on; FILE_CRC is the CRC-32
of the data. HEAD_FLAGS 0x8000 (LONG_BLOCK: PACK_SIZE follows) is always set on file headers;
directories add 0x00E0. Little-endian throughout. Host OS 3 (Unix): ATTR is the st_mode.
"""

from __future__ import annotations

import struct
import zlib

MARKER = b"Rar!\x1a\x07\x00"
DOS_TIME_2012_01_01 = ((2012 - 1980) << 25) | (1 << 21) | (1 << 16)


def _block(head_type: int, flags: int, body: bytes) -> bytes:
    header = struct.pack("<BHH", head_type, flags, 7 + len(body)) + body
    return struct.pack("<H", zlib.crc32(header) & 0xFFFF) + header


def rar4_bytes(entries: dict[str, bytes | None], *, bad_data_crc: str | None = None) -> bytes:
    """A RAR 4.x archive holding ``entries`` (name -> data; None makes a directory), stored.

    ``bad_data_crc`` names an entry whose FILE_CRC is deliberately wrong (a corrupt archive).
    """
    out = [MARKER, _block(0x73, 0, struct.pack("<HI", 0, 0))]
    for name, data in entries.items():
        raw_name = name.encode("utf-8")
        is_dir = data is None
        payload = b"" if is_dir else data
        crc = zlib.crc32(payload) & 0xFFFFFFFF
        if name == bad_data_crc:
            crc ^= 0xFFFFFFFF
        body = (
            struct.pack(
                "<IIBIIBBHI",
                len(payload),  # PACK_SIZE
                len(payload),  # UNP_SIZE
                3,  # HOST_OS: Unix
                crc,  # FILE_CRC
                DOS_TIME_2012_01_01,  # FTIME
                20,  # UNP_VER: 2.0
                0x30,  # METHOD: store
                len(raw_name),
                0o40755 if is_dir else 0o100644,  # ATTR: st_mode
            )
            + raw_name
        )
        out.append(_block(0x74, 0x8000 | (0x00E0 if is_dir else 0), body) + payload)
    out.append(_block(0x7B, 0x4000, b""))
    return b"".join(out)
