"""The citizen data tracker: who accessed a citizen's data, when and why (a web page and a JSON API)."""
