"""Check stratus EC2 Query API XML responses against botocore's EC2 model.

Why this exists
---------------
botocore's EC2 parser (``botocore.parsers.EC2QueryParser``) is lenient.
When a response doesn't match the model, it usually doesn't fail. It just
returns something wrong:

* An element whose name matches no member is **dropped silently**. That
  covers misspellings, wrong casing and wrong nesting.
* A list's children are **not** matched by tag name.
  ``ResponseParser._handle_list`` parses *every* child element as a list
  entry. So ``<tagSet><key>a</key><value>b</value></tagSet>`` (no
  ``<item>``) becomes ``[{}, {}]``.
* ``_handle_boolean`` returns ``text == 'true'``, so ``True``, ``1`` and
  ``yes`` all become False.
* ``_handle_integer`` is Python ``int()``, which accepts ``1_0`` and
  `` 7 ``.
* Timestamps go through ``dateutil``. It accepts almost anything:
  ``Tuesday`` becomes next Tuesday.
* If an element repeats where one is expected, a scalar becomes a Python
  list and a structure keeps only its first copy.
* The error parser also accepts the generic Query ``<ErrorResponse>`` shape,
  not only EC2's ``<Response><Errors><Error>`` shape.

So "botocore parsed it without raising" does not prove much. This module
walks the XML itself, using the naming rules botocore uses, and reports
everything botocore would drop or misread. It also runs botocore's real
parser and checks the parsed result: Python types and ``required`` members.

Naming rules, copied from botocore/parsers.py (botocore 1.44)
-------------------------------------------------------------
* Member element name (``BaseXMLResponseParser._member_key_name``): the
  member's ``locationName`` (``shape.serialization['name']``) if set.
  Otherwise the member name exactly as written in the model. It is **not**
  lower-cased. (For a flattened list, the list member's locationName is used
  instead. The EC2 model has no flattened lists.)
* Tag matching is case-sensitive after removing the ``{namespace}`` prefix
  (``_node_tag``). The namespace itself is ignored.
* The success body root is parsed as the output shape directly. EC2 has no
  ``resultWrapper``. ``requestId`` is read from a direct child of the root
  (``EC2QueryParser._inject_response_metadata``).
* Non-flattened list: every child element is an entry (see above). botocore
  ignores the child's tag, but EC2 and the other AWS SDKs use the list
  member's ``locationName``, which is ``item`` for all but three EC2 lists.
  This check requires that name. If the member has no locationName, it
  accepts ``member`` (the Query default) or ``item``.
* Errors (``EC2QueryParser._do_error_parse``): ``Errors/Error/{Code,Message}``
  becomes ``parsed['Error']``, and ``RequestID`` (capital ``ID``) becomes
  ``ResponseMetadata.RequestId``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime
import difflib
import functools
import re
import sys
import xml.etree.ElementTree as ETree
from pathlib import Path

import botocore.session
from botocore.model import OperationNotFoundError
from botocore.parsers import create_parser
from botocore.utils import parse_timestamp

__all__ = ["check", "main"]

# The regex botocore uses to drop the "{namespace}" part of a tag.
_NAMESPACE_RE = re.compile("{.*}")

# botocore's ResponseParser.parse() treats status >= 301 as an error.
_ERROR_STATUS_MIN = 301

# Strict forms of each scalar type. They match what EC2 sends and what
# stricter SDKs (Go, Java, JS) need. botocore accepts more than this.
_INT_RE = re.compile(r"-?[0-9]+\Z")
_FLOAT_RE = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_FLOAT_SPECIAL = {"NaN", "Infinity", "-Infinity"}
_ISO8601_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})\Z"
)
_INT_RANGES = {"integer": 32, "long": 64}

# Python type botocore's parser should produce for each shape type.
_PARSED_TYPES = {
    "structure": dict,
    "map": dict,
    "list": list,
    "string": str,
    "integer": int,
    "long": int,
    "boolean": bool,
    "float": float,
    "double": float,
    "timestamp": datetime.datetime,
    "blob": bytes,
}

# EC2 sends <return>true</return> for operations that have no output shape
# (DeleteTags, CreateTags, ...). botocore parses nothing for these, so the
# element is harmless, and the check allows it.
_NO_OUTPUT_ALLOWED = {"requestId", "return"}


@functools.lru_cache(maxsize=1)
def _service_model():
    """Load the EC2 model from the installed botocore. Cached: it is large."""
    return botocore.session.get_session().get_service_model("ec2")


def _tag(node) -> str:
    """Return the element's tag without its namespace, as botocore compares it."""
    return _NAMESPACE_RE.sub("", node.tag)


def _xml_name(member_shape, member_name: str) -> str:
    """Return the element name botocore looks for (``_member_key_name``)."""
    if member_shape.type_name == "list" and member_shape.serialization.get("flattened"):
        name = member_shape.member.serialization.get("name")
        if name is not None:
            return name
    return member_shape.serialization.get("name", member_name)


def _list_item_names(list_shape) -> set[str]:
    """Return the tags accepted for entries of a non-flattened list."""
    name = list_shape.member.serialization.get("name")
    return {name} if name else {"member", "item"}


def _body_members(shape):
    """Return ``{xml_name: (member_name, member_shape)}`` for body members.

    Members bound to headers or the status code are skipped, as botocore
    skips them. The EC2 model has none.
    """
    out = {}
    for name, member in shape.members.items():
        if member.serialization.get("location") in ("header", "headers", "statusCode"):
            continue
        out[_xml_name(member, name)] = (name, member)
    return out


def _hint(tag: str, known) -> str:
    """Suggest the intended element name for a misspelled or miscased tag."""
    known = list(known)
    for k in known:
        if k.lower() == tag.lower():
            return f"; wrong case, expected <{k}>"
    close = difflib.get_close_matches(tag, known, n=1, cutoff=0.75)
    return f"; did you mean <{close[0]}>?" if close else ""


def _has_text(node) -> bool:
    return bool(node.text and node.text.strip())


def _children(node, name: str) -> list:
    """Return the direct children named ``name``, ignoring namespaces."""
    return [c for c in node if _tag(c) == name]


# --------------------------------------------------------------------------
# XML walk: finds elements botocore drops and scalars it misreads.
# --------------------------------------------------------------------------

class _XmlWalker:
    """Compare an XML subtree with a botocore shape and collect problems."""

    def __init__(self, enums: bool):
        self.enums = enums
        self.problems: list[str] = []

    def report(self, path: str, msg: str) -> None:
        self.problems.append(f"{path}: {msg}")

    def walk(self, node, shape, path: str, extra_allowed=frozenset()) -> None:
        kind = shape.type_name
        if kind == "structure":
            self._structure(node, shape, path, extra_allowed)
        elif kind == "list":
            self._list(node, shape, path)
        elif kind == "map":
            # The EC2 model has no maps in any output. Fail loudly rather
            # than pretend it was checked.
            self.report(path, f"map shape {shape.name} is not supported by ec2_check")
        else:
            self._scalar(node, shape, path)

    def _structure(self, node, shape, path, extra_allowed) -> None:
        if _has_text(node):
            self.report(
                path,
                f"text {node.text.strip()!r} inside structure {shape.name}; "
                "botocore ignores it (a structure needs child elements)",
            )
        members = _body_members(shape)
        children: dict[str, list] = {}
        for child in node:
            children.setdefault(_tag(child), []).append(child)

        for tag, nodes in children.items():
            child_path = f"{path}/{tag}"
            if tag in extra_allowed:
                continue
            if tag not in members:
                self.report(
                    child_path,
                    f"unknown element, not a member of {shape.name}; botocore drops it"
                    + _hint(tag, members),
                )
                continue
            _, member = members[tag]
            flattened = member.type_name == "list" and member.serialization.get("flattened")
            if flattened:
                for i, item in enumerate(nodes):
                    self.walk(item, member.member, f"{child_path}[{i}]")
                continue
            if len(nodes) > 1:
                self.report(
                    child_path,
                    f"element repeated {len(nodes)} times but {shape.name} has a single "
                    "member with this name; botocore turns it into a list or keeps the "
                    "first copy (was a list wrapper like <...Set><item> intended?)",
                )
            self.walk(nodes[0], member, child_path)

    def _list(self, node, shape, path) -> None:
        if _has_text(node):
            self.report(path, f"text {node.text.strip()!r} inside list {shape.name}; ignored")
        expected = _list_item_names(shape)
        want = " or ".join(f"<{e}>" for e in sorted(expected))
        for i, child in enumerate(node):
            tag = _tag(child)
            if tag not in expected:
                self.report(
                    f"{path}/{tag}",
                    f"list {shape.name} entries must be wrapped in {want}; botocore "
                    f"parses this element as an entry of type {shape.member.name} anyway "
                    "and gets the wrong value (e.g. {} or a bare string)",
                )
                continue
            self.walk(child, shape.member, f"{path}/{tag}[{i}]")

    def _scalar(self, node, shape, path) -> None:
        for child in node:
            self.report(
                f"{path}/{_tag(child)}",
                f"element inside scalar {shape.type_name} member; botocore only reads "
                "the text and drops it",
            )
        text = node.text if node.text is not None else ""
        problem = _scalar_problem(shape, text)
        if problem:
            self.report(path, problem)
        elif self.enums and shape.type_name == "string" and shape.enum and text not in shape.enum:
            self.report(path, f"{text!r} is not a known value of enum {shape.name}")


def _scalar_problem(shape, text: str) -> str | None:
    """Return why ``text`` is not a correct value for a scalar shape, or None.

    Checks the strict form that EC2 sends (see module docstring). For
    timestamps it also runs botocore's own ``parse_timestamp``, because that
    is what boto3/awscli call.
    """
    kind = shape.type_name
    if kind in ("integer", "long"):
        if not _INT_RE.match(text):
            return f"{text!r} is not a valid {kind} (botocore: int() fails or misreads it)"
        bits = _INT_RANGES[kind]
        if not -(2 ** (bits - 1)) <= int(text) < 2 ** (bits - 1):
            return f"{text!r} is out of range for a {bits}-bit {kind}"
    elif kind == "boolean":
        if text not in ("true", "false"):
            return f"{text!r} is not 'true'/'false' (botocore silently reads it as False)"
    elif kind in ("float", "double"):
        if not (_FLOAT_RE.match(text) or text in _FLOAT_SPECIAL):
            return f"{text!r} is not a valid {kind}"
    elif kind == "timestamp":
        fmt = shape.serialization.get("timestampFormat", "iso8601")
        try:
            parse_timestamp(text)
        except Exception as exc:  # ValueError/RuntimeError, depending on version
            return f"{text!r} is not a timestamp botocore can parse ({exc})"
        if fmt == "iso8601" and not _ISO8601_RE.match(text):
            return (
                f"{text!r} is not ISO-8601 with a zone, e.g. 2024-01-02T03:04:05.000Z "
                "(botocore's dateutil guesses, other SDKs reject it)"
            )
    elif kind == "blob":
        try:
            base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            return f"{text[:40]!r} is not valid base64 for a blob"
    return None


# --------------------------------------------------------------------------
# Checks on botocore's parsed result: types and required members.
# --------------------------------------------------------------------------

def _check_parsed(value, shape, path: str, problems: list[str]) -> None:
    """Check what botocore returned: Python type and required members.

    Paths here use model member names (``Reservations[0].Instances[0]``),
    not XML names, so these reports are easy to tell from the XML-walk ones.
    """
    want = _PARSED_TYPES.get(shape.type_name)
    ok = want is None or (
        isinstance(value, want) and not (want is int and isinstance(value, bool))
    )
    if not ok:
        problems.append(
            f"[parsed] {path}: botocore produced {type(value).__name__} "
            f"{value!r:.60}, expected {shape.type_name}"
        )
        return
    if shape.type_name == "structure":
        for req in shape.required_members:
            if req not in value:
                problems.append(
                    f"[parsed] {path}: required member {req} of {shape.name} is missing"
                )
        for name, v in value.items():
            if name in shape.members:
                _check_parsed(v, shape.members[name], f"{path}.{name}", problems)
    elif shape.type_name == "list":
        for i, v in enumerate(value):
            _check_parsed(v, shape.member, f"{path}[{i}]", problems)


# --------------------------------------------------------------------------
# Checks for particular operations, matching botocore's post-parse handlers.
# --------------------------------------------------------------------------

def _check_console_output(parsed: dict, problems: list[str]) -> None:
    """GetConsoleOutput: ``output`` must be base64.

    botocore.handlers.decode_console_output base64-decodes it after the call.
    It does this without validation, so plain text is turned into garbage or
    left as it is, and no error is raised.
    """
    output = parsed.get("Output")
    if output is None:
        return
    try:
        base64.b64decode(output.encode("latin-1"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        problems.append(
            "/GetConsoleOutputResponse/output: not valid base64; botocore's "
            "decode_console_output handler expects base64 and would garble it"
        )


_AFTER_PARSE_CHECKS = {"GetConsoleOutput": _check_console_output}


# --------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------

def check(
    operation_name: str,
    status: int,
    body: bytes,
    headers: dict | None = None,
    enums: bool = False,
) -> list[str]:
    """Check one EC2 Query API response. Return a list of problems.

    An empty list means the response is OK.

    ``status`` is the HTTP status. Statuses >= 301 are checked as EC2 error
    bodies, as botocore does. Statuses 200-299 are checked against the output
    shape of ``operation_name``. If ``enums`` is true, string values must
    also be listed in the model's enum. This is off by default, because
    clients accept unknown enum values (for example custom instance types).
    """
    if isinstance(body, str):
        body = body.encode("utf-8")
    model = _service_model()
    try:
        op = model.operation_model(operation_name)
    except OperationNotFoundError:
        # An action EC2 does not have can only be answered with an error
        # (InvalidAction); check that error's layout with any operation.
        if status < _ERROR_STATUS_MIN:
            return [f"unknown EC2 operation {operation_name!r}"]
        op = model.operation_model("DescribeRegions")

    try:
        root = ETree.fromstring(body)
    except ETree.ParseError as exc:
        return [f"body is not well-formed XML: {exc}"]

    # Run botocore's real parser, with the response dict the client builds.
    response = {
        "status_code": status,
        "headers": headers or {"content-type": "text/xml;charset=UTF-8"},
        "body": body,
    }
    problems: list[str] = []
    try:
        parsed = create_parser(model.protocol).parse(response, op.output_shape)
    except Exception as exc:  # botocore raised; the XML walk below finds where
        parsed = None
        problems.append(f"botocore parser raised {type(exc).__name__}: {exc}")

    if status >= _ERROR_STATUS_MIN:
        problems += _check_error(root, parsed)
    elif 200 <= status < 300:
        problems += _check_success(operation_name, op, root, parsed, enums)
    else:
        problems.append(f"HTTP status {status} is neither 2xx nor an error (>= {_ERROR_STATUS_MIN})")
    return problems


def _check_success(operation_name, op, root, parsed, enums) -> list[str]:
    """Check a 2xx body: root name, requestId, then every element and value."""
    problems: list[str] = []
    root_tag = _tag(root)
    root_path = f"/{root_tag}"
    if root_tag == "Response" and _children(root, "Errors"):
        problems.append(
            f"{root_path}: an EC2 error body was sent with a 2xx status; botocore "
            "treats it as success and drops everything"
        )
    elif root_tag != f"{operation_name}Response":
        problems.append(
            f"{root_path}: root element should be <{operation_name}Response> "
            "(botocore ignores the root name, EC2 and other SDKs do not)"
        )

    request_ids = _children(root, "requestId")
    if not request_ids:
        problems.append(
            f"{root_path}/requestId: missing; EC2 puts <requestId> directly under the "
            "root and botocore reads ResponseMetadata.RequestId from it"
        )
    elif len(request_ids) > 1:
        problems.append(f"{root_path}/requestId: appears {len(request_ids)} times")
    elif not _has_text(request_ids[0]):
        problems.append(f"{root_path}/requestId: empty")

    walker = _XmlWalker(enums)
    if op.output_shape is None:
        # No output shape: botocore parses nothing. Everything except
        # requestId/return is something the server thinks clients see.
        for child in root:
            if _tag(child) not in _NO_OUTPUT_ALLOWED:
                walker.report(
                    f"{root_path}/{_tag(child)}",
                    f"{operation_name} has no output shape; botocore drops this element",
                )
    else:
        walker.walk(root, op.output_shape, root_path, extra_allowed=frozenset({"requestId"}))
    problems += walker.problems

    if parsed is not None:
        rid = parsed.get("ResponseMetadata", {}).get("RequestId")
        if request_ids and rid != (request_ids[0].text or ""):
            problems.append(f"[parsed] ResponseMetadata.RequestId is {rid!r}, not the <requestId> text")
        if op.output_shape is not None:
            body_only = {k: v for k, v in parsed.items() if k != "ResponseMetadata"}
            _check_parsed(body_only, op.output_shape, op.output_shape.name, problems)
        after = _AFTER_PARSE_CHECKS.get(operation_name)
        if after:
            after(parsed, problems)
    return problems


def _check_error(root, parsed) -> list[str]:
    """Check an error body against EC2's exact layout and botocore's result.

    Required layout:
    ``<Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>``
    The structure is checked directly, because botocore also accepts the
    Query ``<ErrorResponse>`` shape, which other SDKs' EC2 clients do not.
    """
    problems: list[str] = []
    if _tag(root) != "Response":
        problems.append(f"/{_tag(root)}: error root element must be <Response> (EC2 layout)")
    allowed = {"Errors", "RequestID"}
    for child in root:
        tag = _tag(child)
        if tag not in allowed:
            problems.append(
                f"/{_tag(root)}/{tag}: unexpected element in error body" + _hint(tag, allowed)
            )
    errors = _children(root, "Errors")
    error_nodes = [e for c in errors for e in _children(c, "Error")]
    if len(errors) != 1 or not error_nodes:
        problems.append("error body must contain exactly one <Errors> holding <Error> elements")
    for i, err in enumerate(error_nodes):
        base = f"/Response/Errors/Error[{i}]"
        tags = [_tag(c) for c in err]
        for name in ("Code", "Message"):
            if tags.count(name) != 1:
                problems.append(f"{base}/{name}: must appear exactly once (found {tags.count(name)})")
        codes = _children(err, "Code")
        if codes and not _has_text(codes[0]):
            problems.append(f"{base}/Code: empty; clients dispatch on the error code")
        for tag in tags:
            if tag not in ("Code", "Message"):
                problems.append(f"{base}/{tag}: unexpected element" + _hint(tag, ("Code", "Message")))
    rids = _children(root, "RequestID")
    if len(rids) != 1 or not _has_text(rids[0]):
        problems.append(
            "/Response/RequestID: must appear once and be non-empty (note: capital "
            "'ID' in error bodies, 'requestId' in success bodies)"
        )

    if parsed is not None:
        err = parsed.get("Error", {})
        codes = _children(error_nodes[0], "Code") if error_nodes else []
        if not err.get("Code"):
            problems.append("[parsed] Error.Code missing or empty; clients cannot identify the error")
        elif codes and err["Code"] != codes[0].text:
            problems.append(f"[parsed] Error.Code is {err['Code']!r}, not the <Code> text {codes[0].text!r}")
        if "Message" not in err:
            problems.append("[parsed] Error.Message missing")
        if not parsed.get("ResponseMetadata", {}).get("RequestId"):
            problems.append("[parsed] ResponseMetadata.RequestId missing")
    return problems


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------

# <Operation>.<status>.<anything>.xml; the <anything> part may be left out.
_FILE_RE = re.compile(r"(?P<op>[A-Za-z0-9]+)\.(?P<status>[0-9]{3})(?:\..+)?\.xml\Z")


def _check_dir(directory: Path, enums: bool) -> int:
    """Check every matching file in ``directory``, print a summary, return the exit code."""
    files = sorted(directory.glob("*.xml"))
    n_ok = n_bad = n_skip = 0
    for path in files:
        m = _FILE_RE.match(path.name)
        if not m:
            print(f"SKIP {path.name}: name is not <Operation>.<status>.<anything>.xml")
            n_skip += 1
            continue
        problems = check(m["op"], int(m["status"]), path.read_bytes(), enums=enums)
        if problems:
            n_bad += 1
            print(f"FAIL {path.name}")
            for p in problems:
                print(f"    {p}")
        else:
            n_ok += 1
            print(f"ok   {path.name}")
    print(f"{n_ok + n_bad} checked: {n_ok} ok, {n_bad} failed, {n_skip} skipped")
    if n_ok + n_bad == 0:
        print(f"no checkable files in {directory}")
        return 1
    return 1 if n_bad else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Check EC2 Query API XML responses against botocore's EC2 model.",
        epilog="Either: OPERATION STATUS FILE   or: --dir DIR",
    )
    ap.add_argument("--dir", type=Path, help="check DIR/<Operation>.<status>.<anything>.xml")
    ap.add_argument("--enums", action="store_true", help="also require known enum values")
    ap.add_argument("args", nargs="*", metavar="OPERATION STATUS FILE")
    ns = ap.parse_args(argv)

    if ns.dir is not None:
        if ns.args:
            ap.error("--dir takes no positional arguments")
        if not ns.dir.is_dir():
            ap.error(f"not a directory: {ns.dir}")
        return _check_dir(ns.dir, ns.enums)

    if len(ns.args) != 3 or not ns.args[1].isdigit():
        ap.error("expected OPERATION STATUS FILE")
    op, status, file = ns.args
    problems = check(op, int(status), Path(file).read_bytes(), enums=ns.enums)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
