"""The Streamlit chat app. ``main.py`` is the page; the logic lives in plain modules."""
