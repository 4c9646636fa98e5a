"""The Streamlit app's shared code.

``state`` and ``widgets`` import Streamlit (cached loaders, the sidebar model selector, page parts);
``settings``, ``registry``, ``archive``, ``analysis``, ``live``, ``jobs`` and ``charts`` do not, and are
tested without a browser.
"""
