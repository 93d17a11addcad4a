"""What the page changes in Streamlit's own frame around it.

- One Stop: Streamlit's status widget ("Running... Stop") appears during every answer, and
  its Stop only ends the tab's script run, leaving the page's Stop and the cursor behind.
  The page's own Stop (and Esc) is the one that ends an answer, so the widget is hidden.

What it adds is fixed text written here, never model output or anything a user typed.
"""

from __future__ import annotations

STYLE = """
<style>
/* One Stop: the page's own (see app/frame.py). */
[data-testid="stStatusWidget"] { display: none !important; }
</style>
"""
