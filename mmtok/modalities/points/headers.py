"""What PLY, PCD and binary STL headers declare, checked before Open3D reads the file.

Open3D sizes its buffers from the header before it reads a point, so a 100-byte file
declaring a billion vertices would take all memory (or abort the process). A header that
declares more bytes than the file holds is ``truncated``; one that declares more points than
``max_points`` is ``too_large``. Headers these parsers do not understand are left to Open3D,
which reports them as unreadable.
"""

from __future__ import annotations

import os
import struct

from ...errors import SampleError

HEADER_BYTES = 1 << 16
PLY_SIZES = {"char": 1, "int8": 1, "uchar": 1, "uint8": 1, "short": 2, "int16": 2,
             "ushort": 2, "uint16": 2, "int": 4, "int32": 4, "uint": 4, "uint32": 4,
             "float": 4, "float32": 4, "double": 8, "float64": 8}
ASCII_VALUE_BYTES = 2  # the shortest text value: one digit and a separator


def check_declared_size(path: str, extension: str, max_points: int) -> None:
    parse = {".ply": ply_declares, ".pcd": pcd_declares, ".stl": stl_declares}.get(extension)
    if parse is None:
        return
    with open(path, "rb") as handle:
        head = handle.read(HEADER_BYTES)
    declared = parse(head)
    if declared is None:
        return
    points, needed = declared
    size = os.path.getsize(path)
    if needed > size:  # a header that lies about its data is not worth decoding at all
        raise SampleError("truncated", f"the header declares {points} points ({needed} bytes "
                          f"at least), the file holds {size} bytes")
    if points > max_points:
        raise SampleError("too_large", f"the header declares {points} points, more than "
                          f"max_points {max_points}")


def ply_declares(head: bytes) -> tuple[int, int] | None:
    """(vertices, bytes at least) of a PLY header."""
    end = head.find(b"end_header")
    if not head.startswith(b"ply") or end < 0:
        return None
    binary, vertices, sizes, element = False, 0, [], None
    for line in head[:end].decode("ascii", "replace").splitlines():
        words = line.split()
        if words[:1] == ["format"] and len(words) > 1:
            binary = words[1].startswith("binary")
        elif words[:1] == ["element"] and len(words) == 3 and words[2].isdigit():
            element = words[1]
            vertices = int(words[2]) if element == "vertex" else vertices
        elif words[:1] == ["property"] and element == "vertex" and len(words) >= 3:
            sizes.append(PLY_SIZES.get(words[1], 1))  # a list property: at least its count
    per_vertex = sum(sizes) if binary else ASCII_VALUE_BYTES * len(sizes)
    return vertices, end + vertices * per_vertex


def pcd_declares(head: bytes) -> tuple[int, int] | None:
    """(points, bytes at least) of a PCD header."""
    fields: dict[str, list[str]] = {}
    for line in head.decode("ascii", "replace").splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        fields[words[0].upper()] = words[1:]
        if words[0].upper() == "DATA":
            break
    try:
        points = int(fields["POINTS"][0])
        sizes = [int(s) * int(c) for s, c in zip(fields["SIZE"], fields.get(
            "COUNT", ["1"] * len(fields["SIZE"])))]
        data = fields["DATA"][0].lower()
    except (KeyError, IndexError, ValueError):
        return None
    per_point = {"binary": sum(sizes), "ascii": ASCII_VALUE_BYTES * len(sizes)}.get(data, 0)
    return points, points * per_point


def stl_declares(head: bytes) -> tuple[int, int] | None:
    """(corner points, exact bytes) of a binary STL; ASCII STL (``solid ...``) is text."""
    if head.lstrip().startswith(b"solid") or len(head) < 84:
        return None
    (triangles,) = struct.unpack_from("<I", head, 80)
    return 3 * triangles, 84 + 50 * triangles
