"""SignalScanner: which ``<promise>`` tags count, whatever the chunking."""

from __future__ import annotations

import time

import pytest

from seqharness.signals import DONE, HALT, SignalScanner, strip_ansi

DONE_TAG = "<promise>TASK_DONE</promise>"
HALT_TAG = "<promise>HALT</promise>"
COMPLETE_TAG = "<promise>COMPLETE</promise>"

# Shaped like seqharness.prompt: the protocol is explained, no line is a bare tag.
PROMPT = "\n".join(
    [
        'You are implementing one task of the Kiro spec "demo".',
        "",
        "Task id: 1.2",
        "Task title: Add the parser",
        "Rules:",
        f"- When the task is complete, print the completion tag {DONE_TAG} as the last line"
        " of your answer.",
        "- If you cannot continue without a human decision, explain what you need and then"
        f" print {HALT_TAG} on a line of its own.",
    ]
)


def scan(output: str, prompt: str = PROMPT, chunk: int | None = None,
         max_line: int | None = None) -> SignalScanner:
    scanner = SignalScanner(prompt, max_line=max_line)
    if chunk is None:
        scanner.feed(output)
    else:
        for i in range(0, len(output), chunk):
            scanner.feed(output[i : i + chunk])
    scanner.close()
    return scanner


# ------------------------------------------------------------------ strip_ansi
def test_strip_ansi_removes_csi_osc_and_other_escapes() -> None:
    text = (
        "\x1b[1;32mgreen\x1b[0m \x1b]0;window title\x07plain \x1b]8;;http://x\x1b\\link"
        "\x1b]8;;\x1b\\ \x1b(Bcharset \x1b=keypad \x1b7saved\x1b8 \x1b[?25lcursor\x1b[?25h end\x07"
    )
    assert strip_ansi(text) == "green plain link charset keypad saved cursor end"


def test_strip_ansi_keeps_plain_text_tabs_and_newlines() -> None:
    text = "a\tb\r\nc ✓ ünïcödé\n"
    assert strip_ansi(text) == text


def test_strip_ansi_unterminated_osc_runs_to_end_of_line_only() -> None:
    assert strip_ansi("before\x1b]0;title never ends\nafter") == "before\nafter"


# ------------------------------------------------------------------ basic verdicts
@pytest.mark.parametrize(
    "output, expected",
    [
        (f"working\n{DONE_TAG}\n", DONE),
        (f"working\n{COMPLETE_TAG}\n", DONE),
        (f"question?\n{HALT_TAG}\n", HALT),
        ("working\nno tag here\n", None),
        (f"All done. {DONE_TAG}\n", DONE),  # tag inside the agent's own sentence
        (f"  \x1b[1m{DONE_TAG}\x1b[0m  \n", DONE),
        (f"⏺ {DONE_TAG}\n", DONE),  # claude-style bullet
        ("<promise> TASK_DONE </promise>\n", DONE),
        ("<promise>TASK_DONE</promise\n", None),  # broken tag
        ("<promise>task_done</promise>\n", None),  # tags are case-sensitive
    ],
)
def test_verdicts(output: str, expected: str | None) -> None:
    assert scan(output).signal == expected


def test_last_counted_signal_wins() -> None:
    assert scan(f"{DONE_TAG}\nwait, a question\n{HALT_TAG}\n").signal == HALT
    s = scan(f"question\n{HALT_TAG}\nnever mind\n{DONE_TAG}\n")
    assert s.signal == DONE
    assert s.halt_context == ""
    assert scan(f"{DONE_TAG} ... {HALT_TAG}\n").signal == HALT  # last tag on the line


def test_unterminated_last_line_is_scanned_on_close() -> None:
    scanner = SignalScanner(PROMPT)
    scanner.feed(f"work\n{DONE_TAG}")
    assert scanner.signal is None
    scanner.close()
    assert scanner.signal == DONE
    scanner.close()  # idempotent
    assert scanner.signal == DONE


# ------------------------------------------------------------------ chunking
def test_every_split_point_of_the_tag_line() -> None:
    output = f"line one\n\x1b[32m{DONE_TAG}\x1b[0m\r\n"
    for cut in range(len(output) + 1):
        scanner = SignalScanner(PROMPT)
        scanner.feed(output[:cut])
        scanner.feed(output[cut:])
        scanner.close()
        assert scanner.signal == DONE, cut


def test_one_character_at_a_time() -> None:
    assert scan(f"a\nb\n{HALT_TAG}\n", chunk=1).signal == HALT
    assert scan(f"a\nb\n{DONE_TAG}", chunk=1).signal == DONE


def test_crlf_and_stray_carriage_returns() -> None:
    assert scan(f"work\r\n{DONE_TAG}\r\n").signal == DONE
    assert scan("<prom\rise>TASK_DONE</promise>\r\r\n").signal == DONE


def test_ansi_inside_the_tag() -> None:
    out = "\x1b[1m<promise>\x1b[0m\x1b[33mTASK_DONE\x1b[0m</promise>\n"
    assert scan(out).signal == DONE
    assert scan(out, chunk=3).signal == DONE


# ------------------------------------------------------------------ echoes
def test_echoed_prompt_does_not_count() -> None:
    assert scan(PROMPT + "\n").signal is None
    assert scan(PROMPT + "\n", chunk=7).signal is None


@pytest.mark.parametrize("prefix", ["> ", "│ ", "user: ", "\x1b[2m> \x1b[0m", "  "])
def test_prefixed_echo_does_not_count(prefix: str) -> None:
    out = "".join(prefix + line + "\n" for line in PROMPT.split("\n"))
    assert scan(out).signal is None


def test_boxed_and_rewrapped_echo_does_not_count() -> None:
    line = PROMPT.split("\n")[5]
    boxed = f"╭{'─' * 60}╮\n│ {line} │\n╰{'─' * 60}╯\n"
    assert scan(boxed).signal is None
    # A TUI that re-wraps the echoed prompt at its own width:
    cut = line.index("print the")
    rewrapped = f"│ {line[:cut]}\n│ {line[cut:]}\n"
    assert scan(rewrapped).signal is None
    # ... or moves the cursor instead of printing spaces:
    assert scan(line.replace(" ", "\x1b[1C") + "\n").signal is None


def test_echo_then_real_signal_counts() -> None:
    out = PROMPT + "\n\nworking...\n" + DONE_TAG + "\n"
    assert scan(out).signal == DONE


def test_hostile_task_title_containing_the_tag() -> None:
    prompt = PROMPT.replace("Add the parser", f"Add the parser {DONE_TAG}")
    title_line = f"Task title: Add the parser {DONE_TAG}"
    assert title_line in prompt
    for echo in (title_line, "> " + title_line, f"Add the parser {DONE_TAG}"):
        assert scan(echo + "\n", prompt=prompt).signal is None, echo
    # The agent's own bare tag still counts.
    assert scan(f"{title_line}\nworking\n{DONE_TAG}\n", prompt=prompt).signal == DONE


def test_hostile_halt_in_task_details() -> None:
    prompt = PROMPT + f"\n  - Details: say {HALT_TAG} to stop"
    assert scan(f"  - Details: say {HALT_TAG} to stop\n", prompt=prompt).signal is None
    assert scan(f"> - Details: say {HALT_TAG} to stop\n{DONE_TAG}\n", prompt=prompt).signal == DONE


def test_bare_tag_alone_on_a_prompt_line_never_counts() -> None:
    """Documented consequence: a prompt must not contain a bare tag line."""
    prompt = PROMPT + "\n" + DONE_TAG
    assert scan(DONE_TAG + "\n", prompt=prompt).signal is None


# ------------------------------------------------------------------ halt context
def test_halt_context_is_the_agent_text_before_the_halt() -> None:
    lines = [f"\x1b[2mline {i}\x1b[0m" for i in range(30)]
    out = "\n".join(lines) + "\nWhich database, PostgreSQL or SQLite?\n" + HALT_TAG + "\nbye\n"
    s = scan(out, chunk=11)
    assert s.signal == HALT
    context = s.halt_context.split("\n")
    assert len(context) <= 20
    assert context[-1] == "Which database, PostgreSQL or SQLite?"
    assert context[0] == "line 11"
    assert "\x1b" not in s.halt_context


def test_halt_context_skips_prompt_echo_and_keeps_text_on_the_halt_line() -> None:
    out = PROMPT + "\nI am stuck.\nShould I drop the table? " + HALT_TAG + "\n"
    s = scan(out)
    assert s.signal == HALT
    assert s.halt_context == "I am stuck.\nShould I drop the table?"


def test_halt_context_spans_feed_calls() -> None:
    s = SignalScanner(PROMPT)
    s.feed("first question part\n")
    s.feed("second part\n")
    s.feed(HALT_TAG + "\n")
    s.close()
    assert s.halt_context == "first question part\nsecond part"


# ------------------------------------------------------------------ overlong lines
def test_max_line_default() -> None:
    assert SignalScanner("short").max_line == 65536
    assert SignalScanner("x" * 50000 + "\nshort").max_line == 100000
    assert SignalScanner("p", max_line=100).max_line == 100


def test_signal_at_the_end_of_a_1mb_line() -> None:
    scanner = SignalScanner(PROMPT)
    piece = "x" * 1000
    for _ in range(1000):
        scanner.feed(piece)
        assert scanner._part_len <= scanner.max_line + len(piece)
    scanner.feed(DONE_TAG + "\n")
    scanner.close()
    assert scanner.signal == DONE


def test_signal_in_the_middle_of_a_1mb_line() -> None:
    s = scan("y" * 500_000 + HALT_TAG + "z" * 500_000 + "\n", chunk=4096)
    assert s.signal == HALT
    s = scan("y" * 500_000 + HALT_TAG + "z" * 500_000 + DONE_TAG + "w" * 100_000 + "\n", chunk=4096)
    assert s.signal == DONE


def test_tag_straddling_a_cut_of_an_overlong_line() -> None:
    for offset in range(0, 40, 3):
        out = "y" * (70_000 - offset) + DONE_TAG + "y" * 70_000 + "\n"
        assert scan(out, chunk=1000).signal == DONE, offset


def test_overlong_line_with_an_echoed_tag_prompt_line_does_not_count() -> None:
    line = PROMPT.split("\n")[5]
    out = "q" * 200_000 + line + "q" * 200_000 + "\n"
    assert scan(out, chunk=4096).signal is None


def test_overlong_line_then_normal_lines() -> None:
    s = scan("x" * 300_000 + "\nquestion?\n" + HALT_TAG + "\n", chunk=5000)
    assert s.signal == HALT
    assert s.halt_context.endswith("question?")


def test_small_max_line() -> None:
    s = scan("a" * 50 + DONE_TAG + "b" * 50 + "\n", chunk=10, max_line=20)
    assert s.signal == DONE


# ------------------------------------------------------------------ cost
@pytest.mark.parametrize("line", [
    "flood line lorem ipsum dolor sit amet \x1b[32mok\x1b[0m\r\n",
    "code: List<int> x = f(a<b, c>d); \x1b[32m<ok>\x1b[0m <promise>nope</promise>\r\n",
], ids=["plain", "angle-brackets-and-tags"])
def test_streaming_20mb_is_fast_and_bounded(line: str) -> None:
    scanner = SignalScanner(PROMPT)
    block = (line * 80)[:4000]
    started = time.monotonic()
    for _ in range(5000):  # 20 MB in PTY-sized chunks
        scanner.feed(block)
    scanner.feed("\n" + DONE_TAG + "\n")
    scanner.close()
    elapsed = time.monotonic() - started
    assert scanner.signal == DONE
    assert len(scanner._recent) <= 64 * 1024
    assert elapsed < 10, elapsed
