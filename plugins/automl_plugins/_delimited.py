"""Delimited text files as people's tools write them: CSV (RFC 4180, quoted fields) and TSV.

The standard ``csv`` module does the parsing; this module chooses how it reads and makes sure no
row is lost, merged or invented on the way:

- a byte-order mark (Excel's "CSV UTF-8", "Unicode text" in UTF-16) picks the encoding and is
  dropped; without one the file is UTF-8;
- a TSV is read without quote handling (IANA's text/tab-separated-values has none): a line is a
  row, and a stray ``"`` in a text stays a character instead of swallowing the lines after it;
- a CSV is read strictly, so a stray quote that opens a field is an error at the line where the
  field went wrong, not rows silently merged into one;
- blank lines (a trailing one too) are skipped; every other row must have one field per column;
- the header must name every column, each once.
"""

from __future__ import annotations

import codecs
import csv
from dataclasses import dataclass
from pathlib import Path

from automl import UsageError

# Longest first: UTF-32 LE's mark begins with UTF-16 LE's.
BYTE_ORDER_MARKS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                    (codecs.BOM_UTF16_BE, "utf-16"))
# Line numbers listed in a message, at most.
SHOWN_LINES = 10


@dataclass(frozen=True)
class Table:
    """A delimited file's data rows: ``columns`` maps each header name to its cells (as written,
    strings), and ``lines[i]`` is the line of the file on which row ``i`` starts (the header is
    line 1)."""

    path: Path
    columns: dict[str, list[str]]
    lines: list[int]

    def column(self, name: str, key: str) -> list[str]:
        """The column ``name`` that ``[data] key`` asks for, or an error listing the columns."""
        if name not in self.columns:
            raise UsageError(f"{self.path} has no column {name!r} ([data] {key}); its columns: "
                             f"{', '.join(self.columns)}")
        return self.columns[name]

    def lines_of(self, rows: list[int]) -> str:
        """The file's line numbers of ``rows`` for a message: the first few, then how many more."""
        shown = ", ".join(str(self.lines[row]) for row in rows[:SHOWN_LINES])
        return shown + (f" and {len(rows) - SHOWN_LINES} more" if len(rows) > SHOWN_LINES else "")

    def without(self, rows: set[int]) -> Table:
        """The table less ``rows`` (indices of data rows)."""
        kept = [row for row in range(len(self.lines)) if row not in rows]
        return Table(self.path, {name: [cells[row] for row in kept] for name, cells in self.columns.items()},
                     [self.lines[row] for row in kept])


def encoding_of(path: Path) -> str:
    """The file's encoding as its byte-order mark says (the mark is then dropped), else UTF-8."""
    with path.open("rb") as file:
        start = file.read(4)
    return next((encoding for mark, encoding in BYTE_ORDER_MARKS if start.startswith(mark)), "utf-8")


def _check_header(path: Path, line: int, header: list[str]) -> list[str]:
    names = [name.strip() for name in header]
    # One column whose name holds a ';' or a tab: a file separated by something else (Excel
    # writes ';' where the decimal mark is a comma).
    mark = next((mark for mark in (";", "\t") if len(names) == 1 and mark in names[0]), None)
    if mark:
        raise UsageError(f"{path}, line {line}: one column, named {names[0]!r}: the file looks separated "
                         f"by {mark!r}; a .csv file is read with ',' and a .tsv file with tabs: save it so")
    unnamed = [index + 1 for index, name in enumerate(names) if not name]
    if unnamed:
        raise UsageError(f"{path}, line {line}: column {unnamed[0]} has no name; the header must name "
                         "every column")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        positions = [index + 1 for index, name in enumerate(names) if name == repeated[0]]
        raise UsageError(f"{path}, line {line}: columns {', '.join(map(str, positions))} are all named "
                         f"{repeated[0]!r}; the header must name each column once")
    return names


def _rows(path: Path, tsv: bool) -> list[tuple[int, list[str]]]:
    """Each non-blank row with the line it starts on."""
    kind = "TSV" if tsv else "CSV"
    encoding = encoding_of(path)
    rows = []
    start = 1
    try:
        with path.open(newline="", encoding=encoding) as file:
            if tsv:
                reader = csv.reader(file, delimiter="\t", quoting=csv.QUOTE_NONE, strict=True)
            else:
                reader = csv.reader(file, strict=True)
            for row in reader:
                if any(cell.strip() for cell in row):
                    rows.append((start, row))
                start = reader.line_num + 1
    except csv.Error as exc:
        merged = reader.line_num > start
        raise UsageError(
            f"{path}, line {start}: {exc}"
            + (f" (a quoted field opened on line {start} runs on to line {reader.line_num}: an "
               "unclosed quote?)" if merged else "")
            + f". In a {kind} file a field that holds a quote is quoted as a whole, its quotes "
            'doubled ("say ""hi"""), or save the file as TSV (.tsv), read without quotes') from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path} is not a readable {encoding.upper()} {kind} file near line {start}: "
                         f"{exc}; save it as UTF-8") from None
    except OSError as exc:
        raise UsageError(f"{path} cannot be read: {exc}") from None
    return rows


def read_table(path: Path) -> Table:
    """A CSV file (TSV when the name ends in .tsv) with a header row; see the module docstring."""
    tsv = path.suffix.lower() == ".tsv"
    rows = _rows(path, tsv)
    if len(rows) < 2:
        raise UsageError(f"{path}: expected a header row and at least one data row, found "
                         f"{len(rows)} non-blank row(s)")
    (header_line, header), body = rows[0], rows[1:]
    names = _check_header(path, header_line, header)
    for line, row in body:
        if len(row) != len(names):
            hint = " (a tab inside a text?)" if tsv and len(row) > len(names) else ""
            raise UsageError(f"{path}, line {line}: {len(row)} fields, but the header has "
                             f"{len(names)}{hint}")
    return Table(path, {name: [row[index] for _, row in body] for index, name in enumerate(names)},
                 [line for line, _ in body])
