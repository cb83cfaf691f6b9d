"""Export writers: what a user opening the CSV, XLSX or ZIP would notice."""

from __future__ import annotations

import csv
import hashlib
import os
import random
import re
import zipfile
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from xml.etree import ElementTree

import pytest

from llmadmin.exports import (
    WriteResult,
    atomic_write,
    csv_cell,
    excel_text,
    md5_of_file,
    safe_member_name,
    sanitize_filename,
    write_csv,
    write_xlsx,
    write_zip_bundle,
)

NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
REL_ID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
MARKER = "…[truncated]"


# --- helpers -------------------------------------------------------------------------------


def read_csv(path, encoding="utf-8"):
    with open(path, encoding=encoding, newline="") as handle:
        return list(csv.reader(handle))


class Xlsx:
    """A produced workbook, parsed with zipfile + ElementTree only."""

    def __init__(self, path):
        with zipfile.ZipFile(path) as archive:
            workbook = ElementTree.fromstring(archive.read("xl/workbook.xml"))
            rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
            targets = {rel.get("Id"): rel.get("Target") for rel in rels}
            self.sheets = {
                sheet.get("name"): ElementTree.fromstring(
                    archive.read("xl/" + targets[sheet.get(REL_ID)])
                )
                for sheet in workbook.find("m:sheets", NS)
            }
            self.styles = ElementTree.fromstring(archive.read("xl/styles.xml"))

    def cells(self, sheet="Export"):
        """Return {"A1": (text, style index, type)} for every written cell."""
        out = {}
        for cell in self.sheets[sheet].iter(f"{{{NS['m']}}}c"):
            if cell.get("t") == "inlineStr":
                text = "".join(t.text or "" for t in cell.iter(f"{{{NS['m']}}}t"))
            else:
                text = cell.find("m:v", NS).text
            out[cell.get("r")] = (text, int(cell.get("s", "0")), cell.get("t"))
        return out

    def rows(self, sheet="Export"):
        """Return the sheet's rows as lists of cell texts (blank cells as None)."""
        grid: dict[int, dict[int, str]] = {}
        for ref, (text, _style, _kind) in self.cells(sheet).items():
            letters, number = re.fullmatch(r"([A-Z]+)(\d+)", ref).groups()
            grid.setdefault(int(number), {})[ord(letters) - ord("A")] = text
        width = max(max(row) for row in grid.values()) + 1
        return [[grid[r].get(c) for c in range(width)] for r in sorted(grid)]

    def number_format(self, style):
        xf = self.styles.find("m:cellXfs", NS)[style]
        fmt_id = xf.get("numFmtId")
        for fmt in self.styles.iter(f"{{{NS['m']}}}numFmt"):
            if fmt.get("numFmtId") == fmt_id:
                return fmt.get("formatCode")
        return None

    def is_bold(self, style):
        xf = self.styles.find("m:cellXfs", NS)[style]
        font = self.styles.find("m:fonts", NS)[int(xf.get("fontId"))]
        return font.find("m:b", NS) is not None


HEADERS = ["id", "name", "when"]


def sample_rows(n):
    return ((i, f"name {i}", datetime(2024, 1, 1) + timedelta(minutes=i)) for i in range(n))


# --- CSV -----------------------------------------------------------------------------------


def test_csv_quotes_every_field_with_crlf_and_optional_bom(tmp_path):
    plain, excel = tmp_path / "plain.csv", tmp_path / "excel.csv"
    rows = [(1, 'say "hi", then\nleave')]
    write_csv(plain, ["id", "text"], iter(rows))
    write_csv(excel, ["id", "text"], iter(rows), bom=True)

    raw = plain.read_bytes()
    assert raw.startswith(b'"id","text"\r\n"1","say ""hi"", then\nleave"\r\n')
    assert excel.read_bytes() == b"\xef\xbb\xbf" + raw
    assert read_csv(excel, "utf-8-sig") == [["id", "text"], ["1", 'say "hi", then\nleave']]


def test_csv_neutralises_formula_strings_but_not_numbers(tmp_path):
    texts = ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "-5", "safe", "a=b"]
    row = (*texts, -5, -1.5, Decimal("-2.50"))
    path = tmp_path / "f.csv"
    write_csv(path, [f"c{i}" for i in range(len(row))], iter([row]))

    assert read_csv(path)[1] == [
        "'=1+1", "'+1", "'-1", "'@SUM(A1)", "'\tx", "'\rx", "'-5", "safe", "a=b",
        "-5", "-1.5", "-2.50",
    ]  # fmt: skip


def test_csv_neutralises_line_feeds_leading_spaces_and_fullwidth_signs(tmp_path):
    texts = ["\n=1+1", "  =1+1", " +1", "\u3000-1", " @x", "＝1+1", "＋1", "－1", "＠SUM(A1)"]
    safe = ["  plain", " ", "a\n=b", "x＝1"]
    row = (*texts, *safe)
    path = tmp_path / "f.csv"
    write_csv(path, [f"c{i}" for i in range(len(row))], iter([row]))

    assert read_csv(path)[1] == ["'" + t for t in texts] + safe
    assert [csv_cell(t) for t in texts] == ["'" + t for t in texts]
    assert [excel_text(t) for t in texts] == ["'" + t for t in texts]


def test_csv_chinese_none_and_datetimes(tmp_path):
    beijing = timezone(timedelta(hours=8))
    row = (
        "你好，世界",
        None,
        datetime(2024, 3, 5, 7, 8, 9, 123456),
        datetime(2024, 3, 5, 8, 0, tzinfo=beijing),
        date(2024, 3, 5),
        True,
        Decimal("1E+2"),
    )
    path = tmp_path / "zh.csv"
    result = write_csv(path, ["文本", "空", "dt", "aware", "d", "b", "dec"], iter([row]))

    assert result == WriteResult(rows=1, sheets=1)
    assert read_csv(path) == [
        ["文本", "空", "dt", "aware", "d", "b", "dec"],
        ["你好，世界", "", "2024-03-05 07:08:09", "2024-03-05 00:00:00", "2024-03-05", "true", "100"],
    ]  # fmt: skip


@pytest.mark.parametrize(("count", "expected"), [(12, [5, 10, 12]), (10, [5, 10]), (0, [])])
def test_csv_progress_reports_increasing_counts(tmp_path, count, expected):
    seen = []
    result = write_csv(
        tmp_path / "p.csv", HEADERS, sample_rows(count), progress=seen.append, progress_every=5
    )
    assert seen == expected
    assert result.rows == count
    assert len(read_csv(tmp_path / "p.csv")) == count + 1


def test_row_with_wrong_width_is_refused(tmp_path):
    with pytest.raises(ValueError, match="row 2 has 2 values"):
        write_csv(tmp_path / "bad.csv", HEADERS, iter([(1, "a", None), (2, "b")]))


# --- XLSX ----------------------------------------------------------------------------------


def test_xlsx_header_types_and_formats(tmp_path):
    plus_two = timezone(timedelta(hours=2))
    row = (
        42, 1.5, Decimal("2.25"), True, None, "text",
        datetime(2024, 1, 1, 12, 0, tzinfo=plus_two), date(2024, 1, 2), 12345678901234567890,
    )  # fmt: skip
    headers = ["id", "f", "dec", "b", "none", "s", "when", "day", "big"]
    path = tmp_path / "t.xlsx"
    assert write_xlsx(path, headers, iter([row])) == WriteResult(rows=1, sheets=1)

    book = Xlsx(path)
    cells = book.cells()
    assert [cells[f"{c}1"][0] for c in "ABCDEFGHI"] == headers
    assert all(book.is_bold(cells[f"{c}1"][1]) for c in "ABCDEFGHI")
    assert cells["A2"] == ("42", 0, None) and cells["B2"][0] == "1.5"
    assert cells["C2"][0] == "2.25" and cells["D2"][:3:2] == ("1", "b")
    assert "E2" not in cells and cells["F2"][0] == "text"
    when, when_style, _ = cells["G2"]  # 10:00 UTC on 2024-01-01 = serial 45292 + 10/24
    assert float(when) == pytest.approx(45292 + 10 / 24)
    assert book.number_format(when_style) == "yyyy-mm-dd hh:mm:ss"
    assert cells["H2"][0] == "45293" and book.number_format(cells["H2"][1]) == "yyyy-mm-dd"
    assert cells["I2"] == ("12345678901234567890", 0, "inlineStr")  # beyond 15 digits: text

    sheet = book.sheets["Export"]
    pane = sheet.find("m:sheetViews/m:sheetView/m:pane", NS)
    assert (pane.get("ySplit"), pane.get("state")) == ("1", "frozen")
    widths = [float(col.get("width")) for col in sheet.iter(f"{{{NS['m']}}}col")]
    assert widths and all(8 <= w <= 61 for w in widths)


def test_xlsx_column_width_follows_content_within_bounds(tmp_path):
    path = tmp_path / "w.xlsx"
    write_xlsx(path, ["a", "b", "c"], iter([("x", "y" * 30, "z" * 500)]))
    cols = {
        int(col.get("min")): float(col.get("width"))
        for col in Xlsx(path).sheets["Export"].iter(f"{{{NS['m']}}}col")
    }
    assert cols[1] < 10 and 30 < cols[2] < 40 and 59 < cols[3] < 61


def test_xlsx_removes_illegal_xml_and_neutralises_formulas(tmp_path):
    row = (
        "a\x00b\x0bc\x1fd\ufffee\ud800f",
        "\x01=cmd|' /C calc'!A0",
        '=HYPERLINK("x")',
        "t\tn\nr",
        -5,
    )
    path = tmp_path / "x.xlsx"
    write_xlsx(path, ["dirty", "hidden", "formula", "ws", "neg"], iter([row]))

    cells = Xlsx(path).cells()
    assert cells["A2"][0] == "abcdef"
    assert cells["B2"][0] == "'=cmd|' /C calc'!A0"
    assert cells["C2"] == ('\'=HYPERLINK("x")', 0, "inlineStr")
    assert cells["D2"][0] == "t\tn\nr"
    assert cells["E2"] == ("-5", 0, None)  # a number, not neutralised


def test_xlsx_rolls_over_to_new_sheets_without_losing_rows(tmp_path):
    seen = []
    path = tmp_path / "big.xlsx"
    result = write_xlsx(
        path, HEADERS, sample_rows(10), max_rows_per_sheet=4, progress=seen.append,
        progress_every=3,
    )  # fmt: skip

    book = Xlsx(path)
    assert result == WriteResult(rows=10, sheets=4)
    assert list(book.sheets) == ["Export", "Export (2)", "Export (3)", "Export (4)"]
    ids = []
    for name in book.sheets:
        rows = book.rows(name)
        assert rows[0] == HEADERS and len(rows) <= 4
        ids += [int(row[0]) for row in rows[1:]]
    assert ids == list(range(10))
    assert seen == [3, 6, 9, 10]


def test_xlsx_exactly_full_sheet_adds_no_empty_sheet(tmp_path):
    result = write_xlsx(tmp_path / "full.xlsx", HEADERS, sample_rows(6), max_rows_per_sheet=4)
    assert result.sheets == 2
    assert list(Xlsx(tmp_path / "full.xlsx").sheets) == ["Export", "Export (2)"]


def test_xlsx_truncates_long_strings_with_marker(tmp_path):
    emoji = "😀" * 20_000  # 40,000 UTF-16 units: Excel's limit counts those
    path = tmp_path / "long.xlsx"
    write_xlsx(path, ["long", "emoji", "fits"], iter([("x" * 40_000, emoji, "y" * 32_767)]))

    cells = Xlsx(path).cells()
    assert len(cells["A2"][0]) == 32_767 and cells["A2"][0].endswith(MARKER)
    utf16_units = len(cells["B2"][0].encode("utf-16-le")) // 2
    assert utf16_units <= 32_767 and cells["B2"][0].endswith("😀" + MARKER)
    assert cells["C2"][0] == "y" * 32_767


def test_xlsx_failure_leaves_no_output_and_no_temp_files(tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()

    def rows():
        yield from sample_rows(3)
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError, match="went away"):
        write_xlsx(tmp_path / "out.xlsx", HEADERS, rows(), tmpdir=str(scratch))
    assert not (tmp_path / "out.xlsx").exists()
    assert list(scratch.iterdir()) == []

    blocked = tmp_path / "blocked.xlsx"
    blocked.mkdir()  # close() cannot create the file: XlsxWriter fails after its temp files
    with pytest.raises(Exception, match="blocked"):
        write_xlsx(blocked, HEADERS, sample_rows(3), tmpdir=str(scratch))
    assert list(scratch.iterdir()) == []


# --- ZIP -----------------------------------------------------------------------------------


def task_files(row):
    return [(f"task-{row[0]}/prompt.txt", f"prompt {row[0]}"), (f"task-{row[0]}/output.txt", "答")]


def test_zip_bundle_holds_csv_and_text_files(tmp_path):
    path = tmp_path / "bundle.zip"
    seen = []
    result = write_zip_bundle(
        path, HEADERS, sample_rows(300), text_files=task_files, progress=seen.append,
        progress_every=100,
    )  # fmt: skip

    assert result == WriteResult(rows=300)
    assert seen == [100, 200, 300]
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None  # every CRC checks out
        names = archive.namelist()
        assert names[-1] == "tasks.csv" and len(names) == 1 + 2 * 300  # the CSV is written last
        assert archive.read("task-7/prompt.txt") == b"prompt 7"
        assert archive.read("task-299/output.txt").decode() == "答"
        # Small text files are stored; the CSV is deflated.
        assert {i.filename: i.compress_type for i in archive.infolist()}[
            "tasks.csv"
        ] == zipfile.ZIP_DEFLATED
        assert {i.compress_type for i in archive.infolist()[:-1]} == {zipfile.ZIP_STORED}
        text = archive.read("tasks.csv").decode("utf-8")
    rows = list(csv.reader(text.splitlines()))
    assert rows[0] == HEADERS and rows[1] == ["0", "name 0", "2024-01-01 00:00:00"]
    assert len(rows) == 301


def test_zip_bundle_sanitises_member_names(tmp_path):
    hostile = ["../../etc/passwd", "/abs/path.txt", "a\x00b/c.txt", "C:\\win\\x.txt", ".."]
    path = tmp_path / "evil.zip"
    write_zip_bundle(
        path, ["id"], iter([(1,)]), text_files=lambda row: [(n, "x") for n in hostile],
        csv_name="../rows.csv",
    )  # fmt: skip

    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    assert names == ["etc/passwd", "abs/path.txt", "ab/c.txt", "C/win/x.txt", "file", "rows.csv"]
    for name in names:
        assert not name.startswith("/") and ".." not in name
        assert "\\" not in name and "\x00" not in name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("task-42/prompt.txt", "task-42/prompt.txt"),
        ("../../etc/passwd", "etc/passwd"),
        ("/etc/passwd", "etc/passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("a\x00b.txt", "ab.txt"),
        ("任务/输出 1.txt", "任务/输出_1.txt"),
        ("", "file"),
    ],
)
def test_safe_member_name(name, expected):
    assert safe_member_name(name) == expected


def test_safe_member_name_fast_path_agrees_with_full_cleaning():
    rng = random.Random(7)
    for _ in range(3000):
        name = "".join(rng.choice("aZ09-_./") for _ in range(rng.randint(1, 20)))
        name = rng.choice(["", "con", "Lpt1."]) + name
        # A leading "/" always takes the slow path, which drops the empty first segment.
        assert safe_member_name(name) == safe_member_name("/" + name), name


def test_safe_member_name_limits_length():
    name = safe_member_name("/".join(["d" * 300] * 5) + "/" + "n" * 300 + ".txt")
    assert len(name) <= 255 and name.endswith(".txt")
    assert all(len(part) <= 100 for part in name.split("/"))


# --- file names ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("报告 2024年.xlsx", "报告_2024年.xlsx"),
        ("../x", "x"),
        ("../../etc/passwd", "etc_passwd"),
        ("a\x00b\x07c.csv", "abc.csv"),
        ("evil\u202egpj.exe", "evilgpj.exe"),  # no right-to-left override
        ("", "export"),
        ("..", "export"),
        (".csv", "export.csv"),
        (".bashrc", "export.bashrc"),
        ("CON.txt", "CON_.txt"),
        ("Q1: revenue/cost?.csv", "Q1_revenue_cost.csv"),
    ],
)
def test_sanitize_filename(name, expected):
    assert sanitize_filename(name) == expected


def test_sanitize_filename_limits_length_and_keeps_extension():
    latin = sanitize_filename("a" * 400 + ".csv")
    assert len(latin) <= 150 and latin.endswith(".csv")
    chinese = sanitize_filename("导出" * 200 + ".xlsx")
    assert chinese.endswith(".xlsx") and len(chinese.encode("utf-8")) <= 200
    assert sanitize_filename("", default="tasks") == "tasks"


# --- atomic_write / md5 --------------------------------------------------------------------


def test_atomic_write_moves_complete_file_and_returns_size_and_md5(tmp_path):
    final = tmp_path / "out.csv"
    seen_paths = []

    def write(path):
        seen_paths.append(path)
        write_csv(path, HEADERS, sample_rows(50))

    size, digest = atomic_write(final, write)

    data = final.read_bytes()
    assert (size, digest) == (len(data), hashlib.md5(data).hexdigest())
    assert md5_of_file(final, chunk=7) == digest
    assert os.path.dirname(seen_paths[0]) == str(tmp_path) and seen_paths[0] != str(final)
    assert sorted(os.listdir(tmp_path)) == ["out.csv"]


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_atomic_write_failure_leaves_nothing_behind(tmp_path, error):
    final = tmp_path / "out.xlsx"

    def rows():
        yield from sample_rows(5)
        raise error

    with pytest.raises(type(error)):
        atomic_write(final, lambda path: write_xlsx(path, HEADERS, rows(), tmpdir=str(tmp_path)))
    assert os.listdir(tmp_path) == []


def test_atomic_write_failure_keeps_previous_file(tmp_path):
    final = tmp_path / "out.csv"
    final.write_text("old")

    def write(path):
        with open(path, "w") as handle:
            handle.write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(final, write)
    assert final.read_text() == "old" and os.listdir(tmp_path) == ["out.csv"]


def test_zip_bundle_past_65535_members_uses_zip64_records(tmp_path):
    """A 40,000-task bundle has 80,001 members: more than the classic end record can count."""
    path = tmp_path / "big.zip"
    rows = ((i, f"name {i}", datetime(2024, 1, 1)) for i in range(40_000))
    write_zip_bundle(path, HEADERS, rows, text_files=task_files)
    with zipfile.ZipFile(path) as archive:
        assert len(archive.infolist()) == 80_001
        assert archive.testzip() is None
        assert archive.read("task-39999/prompt.txt") == b"prompt 39999"
    tail = path.read_bytes()[-22 - 20 - 56 :]
    assert tail[:4] == b"PK\x06\x06" and tail[56:60] == b"PK\x06\x07"  # ZIP64 end record + locator


def test_csv_row_renders_exactly_like_csv_cell():
    """The export's inlined hot path must not drift from the reference cell renderer."""
    import enum
    import io

    from llmadmin.exports.cells import csv_cell, csv_row

    class Level(enum.IntEnum):
        HIGH = 3

    class Kind(str, enum.Enum):  # noqa: UP042 (a str subclass on purpose)
        A = "=a"

    values = [
        None,
        "",
        "plain",
        "=1+1",
        "+x",
        "-5",
        "@SUM",
        "\tTab",
        "\rCR",
        'multi\nline "q"',
        0,
        -5,
        2**70,
        True,
        False,
        1.5,
        -0.0,
        float("inf"),
        Decimal("1E+2"),
        Decimal("-0.000100"),
        datetime(2024, 5, 6, 7, 8, 9, 123456),
        datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
        datetime(2024, 5, 6, 9, 8, 9, tzinfo=timezone(timedelta(hours=2))),
        date(2024, 2, 29),
        Level.HIGH,
        Kind.A,
        b"bytes",
        ["list"],
        "emoji 😀 עברית",
    ]

    def render(cells):
        out = io.StringIO()
        csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerow(cells)
        return out.getvalue()

    assert render(csv_row(values)) == render(map(csv_cell, values))


def test_zip_members_past_4_gib_get_zip64_offsets(tmp_path):
    """Members written beyond 4 GiB (a sparse file, so no disk is used) are still found."""
    from llmadmin.exports.zipbuild import DeflatingWriter, ZipBuilder

    path = tmp_path / "far.zip"
    far = 5 << 30
    with open(path, "wb") as out:
        out.seek(far)
        archive = ZipBuilder(out, spool_dir=str(tmp_path))
        archive.offset = far  # what the builder has "written" so far
        archive.add_text("prompts/1.txt", "你好".encode())
        sink = DeflatingWriter(str(tmp_path))
        sink.write(b"id,name\r\n1,x\r\n")
        sink.close()
        archive.add_deflated("tasks.csv", sink.file, sink.crc, sink.size, sink.compressed)
        sink.discard()
        archive.close()
    with zipfile.ZipFile(path) as bundle:
        assert [(i.filename, i.header_offset >= far) for i in bundle.infolist()] == [
            ("prompts/1.txt", True),
            ("tasks.csv", True),
        ]
        assert bundle.read("prompts/1.txt").decode() == "你好"
        assert bundle.read("tasks.csv") == b"id,name\r\n1,x\r\n"
        assert bundle.testzip() is None


def test_text_bundle_moves_columns_into_files_with_safe_names(tmp_path):
    from llmadmin.exports import write_text_bundle

    path = tmp_path / "bundle.zip"
    rows = [
        (7, "ok", "写一首诗", "床前明月光"),
        ("../../etc/passwd", "x", None, "out"),
        (9, "y", "p", None),
    ]
    result = write_text_bundle(
        path,
        ["id", "status", "Prompt", "Output"],
        iter(rows),
        text_columns=[("Prompt", "prompts"), ("Output", "../outputs")],
    )
    assert result == WriteResult(rows=3)
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == [
            "prompts/7.txt",
            "outputs/7.txt",
            "outputs/etc_passwd.txt",
            "prompts/9.txt",
            "tasks.csv",
        ]
        assert archive.read("prompts/7.txt").decode() == "写一首诗"
        table = list(csv.reader(archive.read("tasks.csv").decode().splitlines()))
    assert table[0] == ["id", "status", "Prompt file", "Output file"]
    assert table[1] == ["7", "ok", "prompts/7.txt", "outputs/7.txt"]
    assert table[2] == ["../../etc/passwd", "x", "", "outputs/etc_passwd.txt"]
    assert table[3] == ["9", "y", "prompts/9.txt", ""]
