"""The canned replies of the loopback server: what it answers when no script item is queued.

Every canned reply says plainly that it is canned and quotes the last user message. The short
one holds a table and a code block; the long one (:data:`LONG_KEYWORD` in the message, or
``--long`` on the command line) holds every kind of Markdown nbchat renders, and enough of it to
watch a long reply stream. With ``n`` > 1 there is one reply per choice, each saying which it is;
a model whose name contains "reasoner" thinks first, in ``reasoning_content``.
"""

from __future__ import annotations

import re
from typing import Any

from .script import Reply, last_user_text, reply_model

__all__ = ["LONG_KEYWORD", "canned_reply", "long_markdown", "short_markdown"]

LONG_KEYWORD = "/long"
"""A message containing this word gets the long Markdown reply."""
_LONG = re.compile(r"(?<!\S)/long(?![\w/-])", re.IGNORECASE)
_LONG_CHUNK = 12  # characters per streamed piece of the long reply: about three tokens


def _blockquote(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines()) or "> (empty)"


def _quote(request: Any) -> str:
    said = last_user_text(request)
    return _blockquote(said[:200] + ("…" if len(said) > 200 else ""))


def _message_count(request: Any) -> int:
    messages = request.get("messages") if isinstance(request, dict) else None
    return len(messages) if isinstance(messages, list) else 0


def short_markdown(request: Any) -> str:
    """The usual canned reply: a quote of the message, a table and a code block."""
    model = reply_model(Reply(), request)
    return (
        "This is a **canned reply from the nbchat loopback server**: no language model was "
        "asked, and apart from this quote of your last message it is the same every time:\n\n"
        f"{_quote(request)}\n\n"
        "| what | value |\n"
        "|---|---|\n"
        "| server | nbchat loopback (offline) |\n"
        f"| model asked for | `{model}` |\n"
        f"| messages received | {_message_count(request)} |\n\n"
        "Point `base_url` at a real OpenAI-compatible server for real answers. Meanwhile, "
        "some code to show how code blocks look (and put `/long` in a message for a long "
        "reply with every kind of Markdown):\n\n"
        "```python\n"
        "def greet(name: str) -> str:\n"
        '    return f"Hello, {name}!"\n'
        "\n"
        'print(greet("notebook"))\n'
        "```\n"
    )


_LONG_SECTIONS = """\
## 1. Headings, emphasis and lists

Text can be **bold**, *italic*, ***both***, ~~struck through~~ or `inline code`, and a
[link to the Jupyter docs](https://docs.jupyter.org) is a link. A list:

- a first point, with a second line
  that continues it
- a nested list:
  1. numbered one
  2. numbered two
- and a last point

> A blockquote can hold **Markdown** too.
>
> > And it nests.

## 2. A table

| month | region | units | revenue (€) | share |
|:------|:------:|------:|------------:|------:|
| Jan | north | 1,204 | 30,120.50 | 24.1% |
| Jan | south | 1,187 | 29,870.00 | 23.9% |
| Feb | east | 1,310 | 33,005.25 | 26.2% |
| Feb | west | 1,295 | 32,410.75 | 25.8% |
| **total** | | **4,996** | **125,406.50** | **100%** |

## 3. Code in several languages

Monthly revenue per region with pandas:

```python
import pandas as pd

def monthly_revenue(sales: pd.DataFrame) -> pd.DataFrame:
    kept = sales[~sales["returned"]]
    revenue = kept["units"] * kept["unit_price"]
    return (
        kept.assign(revenue=revenue, month=kept["date"].dt.to_period("M"))
        .groupby(["month", "region"], observed=True)["revenue"]
        .sum()
        .unstack("region")
    )
```

The same in SQL:

```sql
SELECT date_trunc('month', date) AS month, region, SUM(units * unit_price) AS revenue
FROM sales
WHERE NOT returned
GROUP BY 1, 2
ORDER BY 1, 2;
```

A shell command, and some JSON:

```bash
python -m nbchat.testing.server --port 8123 --long
```

```json
{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}], "n": 2}
```

    an indented block is code too (it counts as a code block for `%chat code N`)

## 4. Math

Inline math such as $e^{i\\pi} + 1 = 0$ or \\(\\bar{x} = \\frac{1}{n}\\sum_i x_i\\) is left to
the notebook's MathJax, and so is display math:

$$
s^2 = \\frac{1}{n - 1} \\sum_{i=1}^{n} (x_i - \\bar{x})^2
$$

---

## 5. Safety

Raw HTML such as <b>this</b> or <script>alert("hi")</script> is shown as text, a
[javascript: link](javascript:alert(1)) is not made into a link, and an image
![a chart](https://example.com/chart.png) is shown as a link and never loaded.
"""

_FILLER = """\
### 6.{number} Filler paragraph {number} of {count}

This paragraph is here to make the reply long enough to watch it stream: each finished block
is drawn once, and only the block still being written is redrawn, so a long reply stays
smooth. Paragraph {number} says the same as the others, with a list:

1. the reply so far is kept if you interrupt it;
2. re-running the cell replaces its turn;
3. `%chat code {code}` puts code block {code} of this reply into a new cell.
"""


def long_markdown(request: Any, *, fillers: int = 8) -> str:
    """A long canned reply: headings, lists, a table, code in four languages, math, a
    blockquote, a rule, content that must be rendered safely, and filler paragraphs."""
    model = reply_model(Reply(), request)
    parts = [
        "# A long canned reply\n\n"
        "This is a **canned reply from the nbchat loopback server**: no language model was "
        f"asked (you asked for `{model}`). It shows every kind of Markdown nbchat renders. "
        "Your last message was:\n\n"
        f"{_quote(request)}\n\n",
        _LONG_SECTIONS,
        "\n## 6. Length\n\n",
        *(
            _FILLER.format(number=i, count=fillers, code=1 + (i - 1) % 5) + "\n"
            for i in range(1, fillers + 1)
        ),
        "That is the end of the long canned reply.\n",
    ]
    return "".join(parts)


def _reasoning(model: str) -> str | None:
    if "reasoner" not in model:
        return None
    return (
        "This is canned reasoning: the loopback server pretends to think before it answers, "
        "as reasoning models do, so that the folded Reasoning section can be seen offline."
    )


def canned_reply(request: Any, *, delay: float = 0.0, long: bool = False) -> Reply:
    """The reply given when the script is empty: the short canned Markdown, or the long one
    when ``long`` is true or the last user message contains :data:`LONG_KEYWORD`; one per
    choice when the request asks for ``n`` > 1 (a number it did not check is taken as 1)."""
    wants_long = long or bool(_LONG.search(last_user_text(request)))
    text = long_markdown(request) if wants_long else short_markdown(request)
    n = request.get("n") if isinstance(request, dict) else None
    count = n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1
    choices = None
    if count > 1:
        choices = [f"**Choice {i + 1} of {count}.**\n\n{text}" for i in range(count)]
    return Reply(
        text=text,
        choices=choices,
        reasoning=_reasoning(reply_model(Reply(), request)),
        chunk_size=_LONG_CHUNK if wants_long else 4,
        delay=delay,
    )
