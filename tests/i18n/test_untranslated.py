"""Fails when a text people read is not translated — the guard of the Chinese UI.

Three checks, each catching what the others cannot:

1. Every page (lists, forms, details, home, Download Center, My settings, sign-in and code pages,
   error pages, flashes) is rendered for a person whose language is Chinese, and no visible
   text (text nodes and title/placeholder/aria-label attributes) may be an English message of
   our catalogue: a msgid shown verbatim means a string that was not run through gettext at
   render time (a module-level text, a forgotten ``_()``), or a msgid missing from the catalogue.
2. The catalogue is complete: every msgid that ``pybabel extract`` finds in llmadmin/ and
   templates/ has a non-empty, non-fuzzy Chinese msgstr, and the committed .mo matches the .po.
3. The source is wrapped: an AST scan refuses literal (or f-string) texts passed to flash(),
   flash_ticked(), render_error(), @action(), raised as user-facing errors, used as column
   labels/descriptions/form descriptions, or written as words in Markup(); and a scan of our
   templates refuses English words outside ``{{ _('…') }}``.
"""

from __future__ import annotations

import ast
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.frontend import CommandLineInterface
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from llmadmin.extensions import db
from llmadmin.models import AuditEntry, BulkOperation
from tests.admin.helpers import make_download, make_task
from tests.conftest import login, post_form
from tests.i18n.conftest import CHINESE, set_person

ROOT = Path(__file__).resolve().parents[2]
PO = ROOT / "llmadmin/translations/zh_Hans_CN/LC_MESSAGES/messages.po"
MO = PO.with_suffix(".mo")
PLACEHOLDER = re.compile(r"%\(\w+\)[sdr]")
WORD = re.compile(r"[A-Za-z]{2,}")


def catalogue():
    with open(PO, "rb") as f:
        return read_po(f, locale=CHINESE)


def english_texts() -> tuple[set[str], list[str]]:
    """Return (whole msgids, fragments of 3+ words) that must not appear on a Chinese page.

    Messages whose translation is the English text itself (ID, MD5, IP) are left out.
    """
    whole, fragments = set(), []
    for message in catalogue():
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for msgid in ids:
            if msgid in strings or not WORD.search(msgid):
                continue
            whole.add(msgid.strip())
            for part in PLACEHOLDER.split(msgid):
                part = part.strip(" .,;:“”()")
                if len(part.split()) >= 3:
                    fragments.append(part)
    return whole, fragments


class VisibleText(HTMLParser):
    """Collect the text a person reads: text nodes (not scripts) and a few attributes."""

    ATTRIBUTES = ("title", "placeholder", "aria-label")

    def __init__(self):
        super().__init__()
        self.texts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "template"):
            self._skip += 1
        for name, value in attrs:
            if name in self.ATTRIBUTES and value:
                self.texts.append(value)

    def handle_endtag(self, tag):
        if tag in ("script", "style", "template") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.texts.append(" ".join(data.split()))


def untranslated(page: str) -> list[str]:
    """Return the English catalogue texts visible on ``page``."""
    parser = VisibleText()
    parser.feed(page)
    whole, fragments = english_texts()
    found = []
    for text in parser.texts:
        if text.strip(" .:") in whole or text in whole:
            found.append(text)
            continue
        found += [f"{fragment!r} in {text!r}" for fragment in fragments if fragment in text]
    return found


# --- 1. rendered pages ----------------------------------------------------------------


@pytest.fixture
def rows(app, admin_user, member_user, sim_model):
    """One row of every kind, so lists, details and edit forms have something to show."""
    failed = make_task(admin_user, sim_model, name="任务一", status="FAILURE", result=None)
    failed.error, failed.error_kind = "HTTP 500 from the endpoint", "server_error"
    done = make_task(admin_user, sim_model, name="任务二")
    ready = make_download(admin_user, name="导出一")
    broken = make_download(admin_user, name="导出二", status="FAILURE", file_name="b.csv")
    db.session.add(
        BulkOperation(
            creator_id=admin_user.id,
            list_name="task",
            action="cancel",
            selection="{}",
            arguments="{}",
            description="2",
            status="SUCCESS",
            matched=2,
            processed=2,
            changed=2,
            skipped=0,
        )
    )
    db.session.add(AuditEntry(person_label="Ada", action="login", summary="x"))
    db.session.commit()
    return {
        "task": failed.id,
        "done": done.id,
        "download": ready.id,
        "failed_download": broken.id,
        "model": sim_model.id,
        "person": member_user.id,
    }


def pages(rows) -> list[str]:
    return [
        "/admin/",
        "/admin/task/",
        "/admin/task/?page_size=50",
        "/admin/task/new/",
        f"/admin/task/details/?id={rows['task']}",
        f"/admin/task/edit/?id={rows['done']}",
        f"/admin/task/duplicate/?ids={rows['task']}",
        "/admin/llmmodel/",
        "/admin/llmmodel/new/",
        f"/admin/llmmodel/details/?id={rows['model']}",
        f"/admin/llmmodel/edit/?id={rows['model']}",
        "/admin/download/",
        f"/admin/download/details/?id={rows['download']}",
        f"/admin/download/details/?id={rows['failed_download']}",
        f"/admin/download/edit/?id={rows['download']}",
        "/admin/bulkoperation/",
        "/admin/person/",
        "/admin/person/new/",
        f"/admin/person/edit/?id={rows['person']}",
        f"/admin/person/details/?id={rows['person']}",
        "/admin/audit/",
        "/admin/code_outbox/",
        "/admin/settings/",
        "/admin/task/details/?id=999999",  # the 404 page
        f"/downloads/{rows['failed_download']}/file",  # 409: not ready
    ]


def test_every_admin_page_is_chinese_for_a_chinese_speaker(zh_admin_client, rows):
    problems = {}
    for url in pages(rows):
        response = zh_admin_client.get(url)
        assert response.status_code in (200, 404, 409), (url, response.status_code)
        found = untranslated(response.get_data(as_text=True))
        if found:
            problems[url] = found
    assert not problems, problems


def test_flashes_and_form_errors_are_chinese(zh_admin_client, rows):
    pages = []
    pages.append(  # an action's flash, with the link to its bulk operation
        post_form(
            zh_admin_client,
            "/admin/task/action/",
            {"action": "cancel", "rowid": [str(rows["done"])]},
            token_from="/admin/task/",
            follow_redirects=True,
        )
    )
    pages.append(  # validation messages next to the fields
        post_form(
            zh_admin_client,
            "/admin/llmmodel/new/",
            {"name": "", "base_url": "ftp://x", "model_name": "", "max_concurrency": "0"},
            token_from="/admin/llmmodel/new/",
        )
    )
    pages.append(
        post_form(
            zh_admin_client,
            "/admin/person/new/",
            {"name": "", "email": "not-an-email", "phone": "abc", "role": "member"},
            token_from="/admin/person/new/",
        )
    )
    pages.append(
        post_form(
            zh_admin_client,
            "/admin/task/new/",
            {"name": "x", "prompt": "", "model": ""},
            token_from="/admin/task/new/",
        )
    )
    for response in pages:
        page = response.get_data(as_text=True)
        assert "alert" in page or "invalid-feedback" in page
        assert not untranslated(page), untranslated(page)


def test_sign_in_and_error_pages_follow_the_browser(app, client, admin_user):
    zh = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}
    for url in ("/login", "/no-such-page"):
        page = client.get(url, headers=zh).get_data(as_text=True)
        assert not untranslated(page), (url, untranslated(page))
    wrong = client.post(
        "/login",
        data={"email": "admin@example.com", "password": "nope", "csrf_token": "bad"},
        headers=zh,
    )
    assert not untranslated(wrong.get_data(as_text=True))


def test_the_code_page_is_chinese(app, client, admin_user):
    set_person(admin_user, locale=CHINESE, otp_required=True)
    response = login(client, "admin@example.com", "admin-password")
    assert response.headers["Location"].endswith("/login/code")
    page = client.get("/login/code").get_data(as_text=True)
    assert "验证码" in page
    assert not untranslated(page), untranslated(page)


# --- 2. the catalogue is complete ------------------------------------------------------------


def extracted_msgids(tmp_path) -> set:
    pot = tmp_path / "messages.pot"
    CommandLineInterface().run(
        ["pybabel", "-q", "extract", "-F", str(ROOT / "babel.cfg"), "-k", "_l", "-k"]
        + ["lazy_gettext", "-k", "markup_text", "-o", str(pot), str(ROOT)]
    )
    with open(pot, "rb") as f:
        return {m.id if isinstance(m.id, str) else tuple(m.id) for m in read_po(f) if m.id}


def test_every_extracted_message_has_a_chinese_translation(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # babel.cfg's patterns are relative to the project root
    translated = {}
    for message in catalogue():
        if message.id:
            key = message.id if isinstance(message.id, str) else tuple(message.id)
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            ok = all(s.strip() for s in strings) and not message.fuzzy
            translated[key] = ok
    missing = sorted(str(m) for m in extracted_msgids(tmp_path) if not translated.get(m))
    assert not missing, f"not translated in {PO.relative_to(ROOT)}: {missing}"


def _key(value):
    return value if isinstance(value, str) else tuple(value)


@pytest.mark.parametrize("domain", ["messages", "admin"])
def test_the_compiled_catalogue_matches_the_po_file(domain):
    po = PO.with_name(f"{domain}.po")
    with open(po.with_suffix(".mo"), "rb") as f:
        compiled = {_key(m.id): _key(m.string) for m in read_mo(f) if m.id}
    with open(po, "rb") as f:
        written = {_key(m.id): _key(m.string) for m in read_po(f) if m.id and not m.fuzzy}
    assert compiled == written, f"run: pybabel compile -D {domain} -d llmadmin/translations"


# --- 3. the source wraps its texts -----------------------------------------------------------

WEB_MODULES = sorted(
    [*ROOT.glob("llmadmin/admin/*.py")]
    + [ROOT / f"llmadmin/{n}.py" for n in ("auth", "errorpages", "downloads_web", "i18n")]
)
USER_ERROR_MODULES = WEB_MODULES + sorted(
    [*ROOT.glob("llmadmin/services/*.py")]
    + [ROOT / f"llmadmin/{n}.py" for n in ("policy", "queues")]
    + [ROOT / "llmadmin/notifiers/__init__.py"]
)
SHOWN_FIRST_ARG = {"flash", "flash_ticked", "flash_operation"}
SHOWN_SECOND_ARG = {"render_error", "_message", "action"}
USER_ERRORS = {
    "ValidationError",
    "FormError",
    "NotFound",
    "SelectionDenied",
    "QueueUnavailable",
    "CodeUnavailable",
    "CodeExpired",
    "CodeLocked",
    "WrongCode",
    "BlockedURL",
    "PromptRefused",
}
LABEL_KEYS = {"description", "label", "message"}
LABEL_DICTS = {"column_labels", "column_descriptions"}


def _literal(node) -> bool:
    """A str literal, an f-string, or literals joined with +: text that gettext never saw."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return bool(WORD.search(node.value))
    if isinstance(node, ast.JoinedStr):
        return any(_literal(v) for v in node.values)
    if isinstance(node, ast.BinOp):
        return _literal(node.left) or _literal(node.right)
    return False


def _name(func) -> str:
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def unwrapped_texts(path: Path, *, web: bool) -> list[str]:
    """Return ``file:line`` of every user-facing literal text in the module at ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            if _name(node.exc.func) in USER_ERRORS and node.exc.args and _literal(node.exc.args[0]):
                found.append(f"{where} raise {_name(node.exc.func)}")
        if not web:
            continue
        if isinstance(node, ast.Call):
            name = _name(node.func)
            args = node.args
            if name in SHOWN_FIRST_ARG and args and _literal(args[0]):
                found.append(f"{where} {name}()")
            if name in SHOWN_SECOND_ARG and len(args) > 1 and any(map(_literal, args[1:])):
                found.append(f"{where} {name}()")
            if name == "Markup" and args and isinstance(args[0], ast.Constant):
                visible = re.sub(r"<[^>]*>|\{\}", "", str(args[0].value))
                if WORD.search(visible):
                    found.append(f"{where} Markup() with words")
            for keyword in node.keywords:
                if keyword.arg in LABEL_KEYS and _literal(keyword.value):
                    found.append(f"{where} {keyword.arg}=")
            if name.endswith("Field") and args and _literal(args[0]):
                found.append(f"{where} {name}() label")
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value in LABEL_KEYS and _literal(value):
                    found.append(f"{where} '{key.value}':")
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            targets = {getattr(t, "id", "") for t in node.targets}
            if targets & LABEL_DICTS and any(map(_literal, node.value.values)):
                found.append(f"{where} {targets & LABEL_DICTS}")
    return found


def test_user_facing_texts_in_the_code_go_through_gettext():
    found = []
    for path in USER_ERROR_MODULES:
        found += unwrapped_texts(path, web=path in WEB_MODULES)
    assert not found, "wrap these in _() / _l() (flask_babel):\n" + "\n".join(found)


TEMPLATES = sorted(
    [*ROOT.glob("templates/admin/**/*.html"), *ROOT.glob("templates/auth/*.html")]
    + [ROOT / "templates/error.html"]
)
JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
ALLOWED_WORDS = {"llmadmin"}


def english_in_template(source: str) -> list[str]:
    """Return English words a template shows outside ``{{ _('…') }}`` (scripts ignored)."""
    source = re.sub(r"<(script|style)\b.*?</\1>", "", source, flags=re.S | re.I)
    source = JINJA.sub("", source)
    parser = VisibleText()
    parser.feed(source)
    words = []
    for text in parser.texts:
        words += [w for w in WORD.findall(text) if w not in ALLOWED_WORDS]
    return words


def test_templates_show_no_untranslated_words():
    found = {}
    for path in TEMPLATES:
        words = english_in_template(path.read_text(encoding="utf-8"))
        if words:
            found[str(path.relative_to(ROOT))] = words
    assert not found, found


def test_the_checks_catch_what_they_are_for():
    """The guards themselves: an English msgid on a page, an unwrapped flash, a bare template word."""
    assert untranslated("<p>Wrong email or password.</p>") == ["Wrong email or password."]
    assert untranslated('<span title="Cancel the selected tasks?">x</span>')
    assert not untranslated("<p>邮箱或密码错误。</p><p>ID</p>")
    source = io.StringIO()
    source.write('flash("Saved.")\nflash(f"{n} saved")\nflash(_("Saved."))\n')
    tree_path = ROOT / "tests/i18n/_probe.py"
    tree_path.write_text(source.getvalue(), encoding="utf-8")
    try:
        assert len(unwrapped_texts(tree_path, web=True)) == 2
    finally:
        tree_path.unlink()
    assert english_in_template("<p>Hello</p><p>{{ _('Hello') }}</p>") == ["Hello"]
