#!/usr/bin/env python
"""Publish the asv dashboard so that it renders with no network access.

``asv publish`` (asv 0.6) writes a site whose ``index.html`` loads jQuery, flot and its
plug-ins, stupidtable, blueimp-md5 and Bootstrap (JS and CSS) from three CDNs; offline the
page stays blank (or jumps to asv's "Can not determine continental origin of swallow" page).
asv has no setting for this: it vendored these files up to 0.5 and fetches them from CDNs
since 0.6 (asv PR #1149). This script

1. runs ``asv publish`` (unless ``--no-publish``),
2. copies ``benchmarks/vendor/`` (the same releases, with their licenses) into
   ``<html_dir>/vendor/``,
3. points every CDN ``<script src>`` / ``<link href>`` of the site at those copies (dropping
   ``integrity``/``crossorigin``/``referrerpolicy``, which would block the local copies under
   ``file://``; the hashes are checked here instead: a vendored file that should be the CDN's
   bytes must match asv's ``integrity`` value), and
4. fails (exit 1) if any remote script, stylesheet, image, frame, CSS ``url()``/``@import``
   or remote ``.js``/``.css`` literal in the site's JS remains, naming each one.

usage (from the repository root):

    python benchmarks/offline_dashboard.py                 # asv publish + rewrite .asv/html
    python benchmarks/offline_dashboard.py -o /tmp/dash    # into another folder
    python benchmarks/offline_dashboard.py --no-publish    # rewrite a site asv already wrote
    python benchmarks/offline_dashboard.py --check DIR     # only check DIR; exit 1 if remote refs
    asv preview                                            # then view it (or any static server)

Exit status: 0 done and offline; 1 a remote reference remains, an unknown CDN URL, or a
vendored file does not match asv's hash; 2 usage error, no site to rewrite, or ``asv publish``
failed (e.g. no results yet: ``asv run`` first).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENDOR = Path(__file__).resolve().parent / "vendor"

# CDN URL referenced by asv's www/index.html -> (file under benchmarks/vendor/, same bytes?).
# "same bytes" files are byte-identical to what the CDN serves (checked against the integrity
# hash asv puts on the tag). flot 0.8.3's *.min.js exist only on cdnjs (minified there with
# yui-compressor); npm flot@0.8.3 ships the unminified sources of that release, vendored
# instead (identical to git tag v0.8.3). Provenance of each file: benchmarks/vendor/README.md.
CDN: dict[str, tuple[str, bool]] = {
    "https://code.jquery.com/jquery-3.3.1.min.js": ("jquery-3.3.1/jquery.min.js", True),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.min.js": ("flot-0.8.3/jquery.flot.js", False),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.time.min.js":
        ("flot-0.8.3/jquery.flot.time.js", False),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.selection.min.js":
        ("flot-0.8.3/jquery.flot.selection.js", False),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.categories.min.js":
        ("flot-0.8.3/jquery.flot.categories.js", False),
    "https://cdn.jsdelivr.net/npm/flot-orderbars@1.0.0/js/jquery.flot.orderBars.js":
        ("flot-orderbars-1.0.0/jquery.flot.orderBars.js", True),
    "https://cdnjs.cloudflare.com/ajax/libs/stupidtable/1.0.1/stupidtable.min.js":
        ("stupidtable-1.0.1/stupidtable.min.js", True),
    "https://cdnjs.cloudflare.com/ajax/libs/blueimp-md5/2.19.0/js/md5.min.js": ("blueimp-md5-2.19.0/md5.min.js", True),
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/js/bootstrap.min.js":
        ("bootstrap-3.1.1/js/bootstrap.min.js", True),
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/css/bootstrap.min.css":
        ("bootstrap-3.1.1/css/bootstrap.min.css", True),
}

REMOTE = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.I)  # http://, https://, protocol-relative //
_TAG = re.compile(r"<(script|link|img|iframe|source|embed|object|audio|video|input)\b[^>]*>", re.I)
_ATTR = re.compile(r"""([^\s"'<>/=]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s"'=<>`]+))?""")
_URL_ATTRS = {"script": "src", "link": "href", "img": "src", "iframe": "src", "source": "src",
              "embed": "src", "object": "data", "audio": "src", "video": "src", "input": "src"}
_NOT_RESOURCES = {"alternate", "canonical", "author", "license", "help", "bookmark", "external",
                  "next", "prev", "search", "me"}  # <link rel=...> that the browser does not fetch
_CSS_REMOTE = re.compile(r"""(?:url\(\s*["']?|@import\s+["'])\s*((?:[a-z][a-z0-9+.-]*:)?//[^"')\s]+)""", re.I)
_JS_REMOTE = re.compile(r"""["'`]((?:https?:)?//[^"'`\s]+?\.(?:m?js|css)(?:\?[^"'`\s]*)?)["'`]""", re.I)
_DROP = ("integrity", "crossorigin", "referrerpolicy")


class OfflineError(Exception):
    """The site cannot be made offline (unknown CDN URL, vendored file not matching asv's hash)."""


def _attrs(tag: str) -> list[tuple[str, str, int, int]]:
    """(name, value, start, end) of each attribute of an HTML start tag, positions in ``tag``."""
    start = re.match(r"<\w+", tag).end()
    out = []
    for m in _ATTR.finditer(tag, start, len(tag) - 1):
        value = m.group(2) or ""
        if value[:1] in "\"'":
            value = value[1:-1]
        out.append((m.group(1).lower(), value, m.start(), m.end()))
    return out


def _tag_url(tag: str) -> tuple[str, str | None]:
    """(tag name, the URL it makes the browser fetch, or None)."""
    name = re.match(r"<(\w+)", tag).group(1).lower()
    attrs = {a: v for a, v, _s, _e in _attrs(tag)}
    if name == "link":
        rels = set(attrs.get("rel", "").lower().split())
        if rels and rels <= _NOT_RESOURCES:
            return name, None
    return name, attrs.get(_URL_ATTRS[name])


def _sri_ok(path: Path, integrity: str) -> bool:
    """True if any of the (space-separated) ``algo-base64`` hashes in ``integrity`` matches ``path``."""
    data = path.read_bytes()
    for item in integrity.split():
        algo, _, digest = item.partition("-")
        if algo in ("sha256", "sha384", "sha512"):
            if base64.b64encode(hashlib.new(algo, data).digest()).decode() == digest:
                return True
    return False


def rewrite_tag(tag: str, vendor_href: str) -> str:
    """``tag`` with its src/href set to ``vendor_href`` and integrity/crossorigin/referrerpolicy dropped."""
    url_attr = _URL_ATTRS[re.match(r"<(\w+)", tag).group(1).lower()]
    for attr, _value, start, end in reversed(_attrs(tag)):  # from the end: positions stay valid
        if attr in _DROP:
            while start > 0 and tag[start - 1].isspace():
                start -= 1
            tag = tag[:start] + tag[end:]
        elif attr == url_attr:
            tag = tag[:start] + f'{url_attr}="{vendor_href}"' + tag[end:]
    return tag


def rewrite_site(html_dir: Path) -> list[str]:
    """Copy the vendored files into ``html_dir/vendor`` and point every known CDN reference at them.

    Returns ``"file: url"`` for each reference replaced. Raises OfflineError on a remote
    reference this script does not know (asv changed its CDN list: vendor the new file), and
    when a vendored file that should be the CDN's bytes does not match asv's integrity hash.
    """
    html_dir = Path(html_dir)
    if not (html_dir / "index.html").is_file():
        raise OfflineError(f"{html_dir} has no index.html: not a site written by asv publish")
    shutil.copytree(VENDOR, html_dir / "vendor", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("README.md", "__pycache__"))
    replaced, unknown, mismatched = [], [], []
    for page in sorted(html_dir.rglob("*.htm*")):
        if (html_dir / "vendor") in page.parents:
            continue
        text = page.read_text(encoding="utf-8")

        def fix(m: re.Match) -> str:
            tag = m.group(0)
            _name, url = _tag_url(tag)
            if not url or not REMOTE.match(url):
                return tag
            key = ("https:" + url.strip()) if url.strip().startswith("//") else url.strip()
            if key not in CDN:
                unknown.append(f"{page.relative_to(html_dir)}: {url}")
                return tag
            rel, same_bytes = CDN[key]
            local = html_dir / "vendor" / rel
            integrity = {a: v for a, v, _s, _e in _attrs(tag)}.get("integrity")
            if same_bytes and integrity and not _sri_ok(local, integrity):
                mismatched.append(f"{rel} does not match integrity {integrity} of {url}")
            replaced.append(f"{page.relative_to(html_dir)}: {url}")
            return rewrite_tag(tag, Path(os.path.relpath(local, page.parent)).as_posix())

        new = _TAG.sub(fix, text)
        if page.name == "error.html" and "offline_dashboard" not in new:
            new = new.replace("</body>", "    <p>This is the offline build of the dashboard "
                              "(benchmarks/offline_dashboard.py): its scripts are in vendor/; "
                              "if this page shows, one of them is missing: run the script again.</p>\n"
                              "  </body>", 1)
        if new != text:
            page.write_text(new, encoding="utf-8")
    if unknown or mismatched:
        raise OfflineError(
            "cannot make the dashboard offline:\n"
            + "".join(f"  remote reference not vendored: {u}\n" for u in unknown)
            + "".join(f"  {m}\n" for m in mismatched)
            + "  vendor the file(s) under benchmarks/vendor/ (see its README.md) and add them to CDN in "
              "benchmarks/offline_dashboard.py")
    return replaced


def remote_refs(html_dir: Path) -> list[str]:
    """Every reference in the site that would make a browser fetch something remote, as ``"file: url"``.

    HTML: script/link(stylesheet, icon, preload...)/img/iframe/source/embed/object URLs and
    inline ``url()``/``@import``; CSS: ``url()``/``@import``; JS: string literals holding a
    remote ``.js``/``.css`` URL. Plain ``<a href>`` links (to asv's GitHub page) are not fetched.
    """
    html_dir = Path(html_dir)
    found = []
    for path in sorted(p for p in html_dir.rglob("*") if p.is_file()):
        suffix = path.suffix.lower()
        if suffix not in (".html", ".htm", ".css", ".js"):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        where = path.relative_to(html_dir).as_posix()
        if suffix in (".html", ".htm"):
            for m in _TAG.finditer(text):
                _name, url = _tag_url(m.group(0))
                if url and REMOTE.match(url):
                    found.append(f"{where}: {url}")
        if suffix in (".html", ".htm", ".css"):
            found += [f"{where}: {u}" for u in _CSS_REMOTE.findall(text)]
        if suffix == ".js" or suffix in (".html", ".htm"):
            found += [f"{where}: {u}" for u in _JS_REMOTE.findall(text)
                      if f"{where}: {u}" not in found]
    return found


def default_html_dir(config: Path) -> Path:
    from asv.config import Config

    return config.parent / Config.load(str(config)).html_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="asv publish, then make the site render offline (vendored JS/CSS instead of CDNs).")
    parser.add_argument("range", nargs="?", help="commit range passed to asv publish")
    parser.add_argument("--config", type=Path, default=ROOT / "asv.conf.json",
                        help="asv config (default: the repository's asv.conf.json); asv runs in its folder")
    parser.add_argument("-o", "--html-dir", type=Path,
                        help="output folder (default: html_dir of the config, .asv/html)")
    parser.add_argument("--no-publish", action="store_true",
                        help="do not run asv publish; rewrite the site already in the output folder")
    parser.add_argument("--check", type=Path, metavar="DIR",
                        help="only list remote references in DIR; exit 1 if there is any")
    args = parser.parse_args(argv)

    if args.check is not None:
        refs = remote_refs(args.check)
        for ref in refs:
            print(f"remote: {ref}", file=sys.stderr)
        print(f"{args.check}: {len(refs)} remote script/stylesheet/image reference(s)")
        return 1 if refs else 0

    config = args.config.resolve()
    if not config.is_file():
        print(f"error: no asv config at {config}", file=sys.stderr)
        return 2
    html_dir = (args.html_dir.resolve() if args.html_dir else default_html_dir(config).resolve())
    if not args.no_publish:
        cmd = [sys.executable, "-m", "asv", "publish", "--config", str(config), "--html-dir", str(html_dir)]
        if args.range:
            cmd.append(args.range)
        rc = subprocess.run(cmd, cwd=config.parent).returncode
        if rc != 0:
            print(f"error: asv publish failed (exit {rc})", file=sys.stderr)
            return 2
    if not (html_dir / "index.html").is_file():
        print(f"error: {html_dir} has no index.html: run without --no-publish, or pass -o DIR", file=sys.stderr)
        return 2
    try:
        replaced = rewrite_site(html_dir)
    except OfflineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    left = remote_refs(html_dir)
    if left:
        print("error: remote references remain (the page would need the network):", file=sys.stderr)
        for ref in left:
            print(f"  {ref}", file=sys.stderr)
        return 1
    print(f"offline dashboard in {html_dir}: {len(replaced)} CDN reference(s) now point to vendor/, "
          "no remote script or stylesheet left")
    print(f"view it: asv preview --html-dir {html_dir}   (or: python -m http.server -d {html_dir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
