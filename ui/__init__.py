"""The Streamlit app's shared code (see docs/app.md).

``state``, ``widgets`` and ``patches`` import Streamlit (cached loaders, the sidebar model picker,
page parts, one runner adjustment); ``settings``, ``registry``, ``archive``, ``analysis``, ``live``,
``jobs``, ``train_worker``, ``charts`` and ``native`` do not, and are tested without a browser.
"""
