"""Struct views: a struct or union in the target's memory, its members read and written by name.

    ts = ts_pointer.cast("struct timespec")     # or .cast() for an argument whose prototype names the struct
    ts.tv_sec = 946684800
    addr.sin_addr.s_addr, st.st_mtim.tv_sec, ent.d_name.string(), len(view) == sizeof

Hook side: loaded in the target by Pointer.cast. The layouts are the compiler's, measured at build time
(layouts.py) for the type names the script's .cast("...") literals and its prototypes' pointer parameters
name, and kept in the build's views.json. Every read and write goes through the Pointer's checked accessors:
a bad address is a ValueError, never a crash.
"""
import json
import os

from mrhooker import _inside

_layouts = (None, None)   # (the build directory they were read from, {name: layout}): an attached process's
#                           later build has its own (pyrt.c, mrh_hook_restart)
_READ = {("int", 1): "read_i8", ("int", 2): "read_i16", ("int", 4): "read_i32", ("int", 8): "read_i64",
         ("uint", 1): "read_u8", ("uint", 2): "read_u16", ("uint", 4): "read_u32", ("uint", 8): "read_u64",
         ("float", 4): "read_f32", ("float", 8): "read_f64"}


def _layout(name):
    global _layouts
    if _layouts[0] != _inside.build_dir:
        try:
            with open(os.path.join(_inside.build_dir or "", "views.json")) as f:
                _layouts = (_inside.build_dir, json.load(f))
        except (OSError, ValueError):
            _layouts = (_inside.build_dir, {})
    layout = _layouts[1].get(" ".join(str(name).split()))
    if layout is None:
        raise TypeError("no layout of %r in this build: name it in a string literal in the script, "
                        "p.cast(\"struct timespec\"), so that mrhooker measures it when it builds" % (name,))
    return layout


def cast(pointer, name, pointee):
    """Pointer.cast(name): the view of the struct at pointer."""
    if name is None:
        if pointee is None:
            raise TypeError("this Pointer's type isn't known from a prototype: name it, p.cast(\"struct stat\")")
        name = pointee
    layout = _layout(name)
    if not pointer:
        raise ValueError("NULL pointer: there is no %s to view" % name)
    return View(pointer, name, layout["size"], layout["fields"], layout.get("aliases", {}))


def _get(base, field, name):
    at = base + field["offset"]
    kind = field["kind"]
    if kind in ("int", "uint", "float"):
        return getattr(at, _READ[kind, field["size"]])()
    if kind == "pointer":
        return at.read_ptr()
    if kind == "struct":
        return View(at, name, field["size"], field["fields"], {})
    if kind == "array":
        return Array(at, name, field["element"], field["count"])
    raise TypeError("member %s is a %s: views can't read it; use the Pointer at offset %d"
                    % (name, "bitfield" if kind == "bitfield" else "type views don't know", field["offset"]))


def _set(base, field, name, value):
    at = base + field["offset"]
    kind = field["kind"]
    if kind in ("int", "uint", "float"):
        getattr(at, "write" + _READ[kind, field["size"]][4:])(value)
    elif kind == "pointer":
        at.write_ptr(value)
    elif kind in ("struct", "array") and isinstance(value, (bytes, bytearray, memoryview)):
        if len(value) != field["size"]:
            raise ValueError("%s takes %d bytes, not %d" % (name, field["size"], len(value)))
        at.write(bytes(value))
    elif kind == "array" and isinstance(value, (list, tuple)):
        array = Array(at, name, field["element"], field["count"])
        if len(value) > len(array):
            raise ValueError("%s holds %d elements, not %d" % (name, len(array), len(value)))
        for i, item in enumerate(value):
            array[i] = item
    else:
        raise TypeError("member %s can't be assigned %s" % (name, type(value).__name__))


class View:
    """A struct (or union) at an address: its members as attributes, len() its size, int() its address."""

    __slots__ = ("_at", "_type", "_size", "_fields", "_aliases")

    def __init__(self, at, type_name, size, fields, aliases):
        object.__setattr__(self, "_at", at)
        object.__setattr__(self, "_type", type_name)
        object.__setattr__(self, "_size", size)
        object.__setattr__(self, "_fields", fields)
        object.__setattr__(self, "_aliases", aliases)

    def _member(self, name):
        fields = self._fields
        if name in fields:
            return self, fields[name]
        path = self._aliases.get(name)
        if path is None:
            raise AttributeError("%s has no member %r (its members: %s)" % (self._type, name, ", ".join(fields)))
        view = self
        *outer, last = path.split(".")
        for part in outer:
            view = getattr(view, part)
        return view, view._fields[last]

    def __getattr__(self, name):
        view, field = self._member(name)
        return _get(view._at, field, name)

    def __setattr__(self, name, value):
        view, field = self._member(name)
        _set(view._at, field, name, value)

    def __len__(self):
        return self._size

    def __int__(self):
        return int(self._at)

    __index__ = __int__

    def __bytes__(self):
        return self._at.read(self._size)

    def __dir__(self):
        return list(self._fields) + list(self._aliases)

    @property
    def pointer(self):
        return self._at

    def __repr__(self):
        shown = []
        for name, field in self._fields.items():
            if field["kind"] in ("int", "uint", "float", "pointer"):
                try:
                    shown.append("%s=%r" % (name, _get(self._at, field, name)))
                except ValueError:
                    shown.append("%s=?" % name)
        return "<%s at %#x: %s>" % (self._type, int(self._at), ", ".join(shown))


class Array:
    """An array member: len(), indexing (negative too), iteration, bytes(); .string() up to its first NUL."""

    __slots__ = ("_at", "_name", "_element", "_count")

    def __init__(self, at, name, element, count):
        self._at, self._name, self._element, self._count = at, name, element, count

    def __len__(self):
        return self._count

    def _index(self, i):
        if not isinstance(i, int):
            raise TypeError("%s indices must be integers, not %s" % (self._name, type(i).__name__))
        if self._count:   # a flexible array member (count 0) is not checked: its length is the program's
            if i < 0:
                i += self._count
            if not 0 <= i < self._count:
                raise IndexError("%s[%d] is out of range (it holds %d)" % (self._name, i, self._count))
        return i

    def _field(self, i):
        return dict(self._element, offset=self._element["offset"] + self._index(i) * self._element["size"])

    def __getitem__(self, i):
        return _get(self._at, self._field(i), "%s[%d]" % (self._name, i))

    def __setitem__(self, i, value):
        _set(self._at, self._field(i), "%s[%d]" % (self._name, i), value)

    def __iter__(self):
        return (self[i] for i in range(self._count))

    def __bytes__(self):
        return self._at.read(self._count * self._element["size"])

    def string(self):
        """The bytes up to the first NUL (a char array holding a C string)."""
        data = bytes(self)
        return data.split(b"\0", 1)[0]

    def __repr__(self):
        return "<%s: %d elements at %#x>" % (self._name, self._count, int(self._at))

