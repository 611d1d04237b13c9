"""The tracker's web pages: server-rendered HTML that works without JavaScript, reads on a phone and is accessible
(a language attribute, labelled controls, table headers with scope, a caption, visible focus, no colour-only
meaning). Every value is escaped here; the pages load one stylesheet from the tracker itself and nothing else."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from urllib.parse import urlencode

from exchange.tracker.store import AccessRow

__all__ = ["STYLESHEET", "Filters", "KeysShown", "about_page", "accesses_page", "describe_basis", "error_page",
           "format_time", "iso_time", "proof_page", "signin_page"]


@dataclass(frozen=True, slots=True)
class Filters:
    """What the citizen asked for: a period (inclusive dates, ``YYYY-MM-DD``), an agency, a page (from 1)."""

    start: str = ""
    end: str = ""
    agency: str = ""
    page: int = 1

    def query(self, **change: object) -> str:
        values = {"from": self.start, "to": self.end, "agency": self.agency, "page": str(self.page)}
        values.update({k: str(v) for k, v in change.items()})
        return urlencode({k: v for k, v in values.items() if v and not (k == "page" and v == "1")})


@dataclass(frozen=True, slots=True)
class KeysShown:
    """What a citizen needs to check a proof offline."""

    origin: str
    log_key: str
    witness_keys: tuple[str, ...] = ()


def format_time(micros: int) -> str:
    return datetime.fromtimestamp(micros / 1_000_000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def describe_basis(row: AccessRow) -> str:
    basis = row.legal_basis or ""
    if basis == "consent":
        return "Your consent" + (f" ({row.consent_ref})" if row.consent_ref else "")
    return basis.removeprefix("statute:") or "not recorded"


def _layout(title: str, body: str, *, signed_in: bool = False) -> str:
    signout = ('<form method="post" action="/session/end" class="signout"><button type="submit">Sign out</button>'
               "</form>") if signed_in else ""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)} · Data tracker</title>\n"
        '<link rel="stylesheet" href="/static/tracker.css">\n</head>\n<body>\n'
        '<a class="skip" href="#main">Skip to content</a>\n'
        f'<header><p class="brand">Data tracker</p>{signout}</header>\n'
        f'<main id="main">\n{body}\n</main>\n'
        "<footer><p>Every access is written to a public, tamper-evident access log. "
        '<a href="/about">How to check this list</a>.</p></footer>\n</body>\n</html>\n'
    )


def signin_page(error: str | None = None) -> str:
    problem = (f'<p class="error" role="alert" id="token-error">{escape(error)}</p>' if error else "")
    described = ' aria-describedby="token-error"' if error else ""
    return _layout("Sign in", f"""<h1>Who has seen your data?</h1>
<p>Sign in with the token your identity provider gave you to see every time an agency received your data:
when, which agency, which details, for what purpose and on what legal basis.</p>
{problem}
<form method="post" action="/session">
<label for="token">Your sign-in token</label>
<textarea id="token" name="token" rows="4" required autocomplete="off" spellcheck="false"{described}></textarea>
<button type="submit">Sign in</button>
</form>""")


def accesses_page(rows: Sequence[AccessRow], total: int, filters: Filters, *, page_size: int,
                  agencies: Mapping[str, str], proved_size: int) -> str:
    """The citizen's accesses, newest first, with the filter form and page links."""
    pages = max(1, -(-total // page_size))
    options = "".join(
        f'<option value="{escape(a)}"{" selected" if a == filters.agency else ""}>{escape(name)}</option>'
        for a, name in sorted(agencies.items(), key=lambda item: item[1]))
    form = f"""<form method="get" action="/" class="filters">
<fieldset><legend>Show accesses</legend>
<div><label for="from">From (date)</label>
<input type="date" id="from" name="from" value="{escape(filters.start)}"></div>
<div><label for="to">To (date)</label><input type="date" id="to" name="to" value="{escape(filters.end)}"></div>
<div><label for="agency">Agency</label>
<select id="agency" name="agency"><option value="">All agencies</option>{options}</select></div>
<button type="submit">Show</button>
</fieldset></form>"""
    if not rows:
        listing = '<p class="empty">No accesses to show for this choice.</p>'
    else:
        body = "".join(_row(r, proved_size) for r in rows)
        listing = f"""<table>
<caption>{total} access{"es" if total != 1 else ""}, newest first (page {filters.page} of {pages})</caption>
<thead><tr><th scope="col">When</th><th scope="col">Agency</th><th scope="col">What</th>
<th scope="col">Details received</th><th scope="col">Purpose</th><th scope="col">Legal basis</th>
<th scope="col">Proof</th></tr></thead>
<tbody>
{body}</tbody>
</table>"""
    links = []
    if filters.page > 1:
        links.append(f'<a rel="prev" href="/?{escape(filters.query(page=filters.page - 1))}">Newer</a>')
    if filters.page < pages:
        links.append(f'<a rel="next" href="/?{escape(filters.query(page=filters.page + 1))}">Older</a>')
    nav = f'<nav aria-label="Pages" class="pages">{" ".join(links)}</nav>' if links else ""
    return _layout("Your data", f"""<h1>Who has seen your data</h1>
<p>Each row is one delivery of your data to an agency, as the access log records it.</p>
{form}
{listing}
{nav}""", signed_in=True)


def _row(row: AccessRow, proved_size: int) -> str:
    agency = escape(row.recipient_name or row.recipient or "")
    code = escape(row.recipient or "")
    fields = ", ".join(escape(f) for f in row.fields) or "none"
    proof = (f'<a href="/proofs/{row.log_index}">Proof of entry {row.log_index}</a>' if row.log_index < proved_size
             else f"Entry {row.log_index}: proof after the next checkpoint")
    when = f'<time datetime="{iso_time(row.decided_at)}">{format_time(row.decided_at)}</time>'
    return (f'<tr><td data-label="When">{when}</td>'
            f'<td data-label="Agency">{agency} <span class="code">({code})</span></td>'
            f'<td data-label="What">{escape(row.record_type or "")}</td>'
            f'<td data-label="Details received">{fields}</td>'
            f'<td data-label="Purpose">{escape(row.purpose or "")}</td>'
            f'<td data-label="Legal basis">{escape(describe_basis(row))}</td>'
            f'<td data-label="Proof">{proof}</td></tr>\n')


def iso_time(micros: int) -> str:
    """RFC 3339 in UTC, whole seconds."""
    return datetime.fromtimestamp(micros / 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def proof_page(row: AccessRow, keys: KeysShown, checkpoint_size: int) -> str:
    """One access with its proof files and how to check them offline."""
    witnesses = "".join(f" --witness-key '{escape(k)}'" for k in keys.witness_keys)
    files = f"proof-{row.log_index}.txt --entry entry-{row.log_index}.bin"
    return _layout(f"Proof of entry {row.log_index}", f"""<h1>Proof of entry {row.log_index}</h1>
<dl>
<dt>When</dt><dd>{format_time(row.decided_at)}</dd>
<dt>Agency</dt><dd>{escape(row.recipient_name or "")} ({escape(row.recipient or "")})</dd>
<dt>What</dt><dd>{escape(row.record_type or "")}</dd>
<dt>Details received</dt><dd>{", ".join(escape(f) for f in row.fields) or "none"}</dd>
<dt>Purpose</dt><dd>{escape(row.purpose or "")}</dd>
<dt>Legal basis</dt><dd>{escape(describe_basis(row))}</dd>
</dl>
<h2>Check it yourself</h2>
<p>This access is entry {row.log_index} of the access log <code>{escape(keys.origin)}</code>, whose signed
checkpoint of {checkpoint_size} entries the proof carries{" with the witnesses' cosignatures" if keys.witness_keys
 else ""}. Nobody, not even the exchange, can remove or change the entry without the checkpoint failing to verify.</p>
<ul>
<li><a href="/proofs/{row.log_index}/proof.txt" download>Download the proof</a> (C2SP tlog-proof, text)</li>
<li><a href="/proofs/{row.log_index}/entry.bin" download>Download the entry</a> (the access-log record, binary)</li>
</ul>
<p>Then, on any computer with the exchange installed and no network:</p>
<pre><code>exchange audit check-proof {files} --origin '{escape(keys.origin)}' \\
  --log-key '{escape(keys.log_key)}'{witnesses}</code></pre>
<p>It prints <samp>ok: entry {row.log_index} … the entry matches</samp> when the entry is in the signed log.</p>
<p><a href="/">Back to your accesses</a></p>""", signed_in=True)


def about_page(keys: KeysShown) -> str:
    return _layout("How to check this list", f"""<h1>How to check this list</h1>
<p>Every decision to deliver your data is an entry in an append-only access log. The log's operator signs a
checkpoint of it regularly, and independent witnesses countersign each checkpoint only if it extends the one
before: an entry, once in a checkpoint, cannot be removed or changed without everyone noticing.</p>
<p>Each row links to a proof that its entry is in the log. Check it with <code>exchange audit check-proof</code>
and these public keys:</p>
<dl><dt>Log</dt><dd><code>{escape(keys.origin)}</code></dd><dt>Log key</dt><dd><code>{escape(keys.log_key)}</code></dd>
{"".join(f"<dt>Witness key</dt><dd><code>{escape(k)}</code></dd>" for k in keys.witness_keys)}</dl>
<p>Deliveries under some investigations are shown only after a period the law sets; they appear here on that
day.</p>
<p><a href="/">Back</a></p>""")


def error_page(status: int, message: str, *, signed_in: bool = False) -> str:
    return _layout(f"Error {status}", f'<h1>Something was wrong with the request</h1>\n'
                   f'<p role="alert">{escape(message)}</p>\n<p><a href="/">Back to the start</a></p>',
                   signed_in=signed_in)


STYLESHEET = """\
:root { color-scheme: light dark; --fg: #1b1b1b; --bg: #fff; --muted: #595959; --line: #d0d0d0; --stripe: #f4f6f8;
  --accent: #0b5cad; --on-accent: #fff; }
@media (prefers-color-scheme: dark) { :root { --fg: #eee; --bg: #121212; --muted: #bbb; --line: #444;
  --stripe: #1c1f23; --accent: #7ab8ff; --on-accent: #121212; } }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 80rem; padding: 0 1rem; font: 1rem/1.5 system-ui, sans-serif; color: var(--fg);
  background: var(--bg); }
main p, main ul { max-width: 75ch; }
h1 { font-size: 1.75rem; line-height: 1.25; margin: 1.5rem 0 .75rem; }
h2 { font-size: 1.25rem; margin: 2rem 0 .5rem; }
a { color: var(--accent); }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
.skip { position: absolute; left: -999px; } .skip:focus { left: 1rem; top: 1rem; }
header { display: flex; justify-content: space-between; align-items: center; gap: 1rem; padding: .5rem 0;
  border-bottom: 1px solid var(--line); }
header p, header form { margin: 0; }
.brand { font-weight: 700; font-size: 1.125rem; }
textarea, input, select, button { font: inherit; padding: .4rem .5rem; border: 1px solid var(--muted);
  border-radius: .25rem; color: inherit; background: var(--bg); }
textarea { width: 100%; max-width: 44rem; display: block; font-family: ui-monospace, monospace; font-size: .875rem; }
label { display: block; font-weight: 600; margin: .5rem 0 .25rem; }
button { margin-top: .75rem; padding: .45rem 1.1rem; cursor: pointer; font-weight: 600; color: var(--on-accent);
  background: var(--accent); border-color: var(--accent); }
header button { margin: 0; color: var(--accent); background: transparent; }
.error { border-left: 4px solid #b00020; padding-left: .5rem; }
fieldset { border: 1px solid var(--line); border-radius: .25rem; display: flex; flex-wrap: wrap; gap: .5rem 1rem;
  align-items: end; margin: 1rem 0; padding: .25rem 1rem 1rem; }
legend { font-weight: 600; padding: 0 .25rem; }
fieldset > div { flex: 1 1 9rem; max-width: 14rem; min-width: 0; }
fieldset > div:last-of-type { flex-basis: 14rem; max-width: 22rem; }
fieldset input, fieldset select, fieldset button { height: 2.5rem; }
fieldset input, fieldset select { width: 100%; }
fieldset button { margin: 0; }
table { border-collapse: collapse; width: 100%; margin: 1rem 0; font-size: .9375rem; }
caption { text-align: left; font-weight: 600; padding: .5rem 0; }
th, td { text-align: left; vertical-align: top; padding: .5rem .6rem; border-bottom: 1px solid var(--line); }
thead th { border-bottom: 2px solid var(--muted); white-space: nowrap; }
tbody tr:nth-child(even) { background: var(--stripe); }
td[data-label="When"], td[data-label="Proof"] { white-space: nowrap; }
td[data-label="Agency"] { min-width: 11rem; }
.code { display: block; color: var(--muted); font-size: .875rem; }
.empty { padding: 1rem; border: 1px dashed var(--line); }
.pages { display: flex; gap: 1.5rem; margin: 1rem 0 2rem; }
dl { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: .35rem 1.5rem; }
dt { font-weight: 600; } dd { margin: 0; overflow-wrap: anywhere; }
code, samp, pre { font-family: ui-monospace, monospace; font-size: .9em; }
pre { overflow-x: auto; padding: .75rem 1rem; border: 1px solid var(--line); border-radius: .25rem;
  background: var(--stripe); }
footer { margin-top: 2rem; border-top: 1px solid var(--line); color: var(--muted); font-size: .9rem; }
@media (max-width: 40rem) {
  h1 { font-size: 1.5rem; }
  thead { position: absolute; left: -999px; }
  tr, td { display: block; } tr { border-bottom: 2px solid var(--line); padding: .5rem; }
  td { border: 0; padding: .15rem 0; white-space: normal; } td::before { content: attr(data-label) ": ";
    font-weight: 600; }
  td[data-label] { white-space: normal; min-width: 0; }
  .code { display: inline; }
  dl { grid-template-columns: minmax(0, 1fr); gap: 0; } dd { margin-bottom: .5rem; }
}
"""
