"""The web app's services that need no Streamlit: settings, the model registry, uploads, training jobs.

``ui/`` holds the code that draws with Streamlit; these modules hold what the app does behind it
(and what its tests drive directly): :mod:`.settings` (paths, limits, access, from secrets or the
environment), :mod:`.registry` (the saved models and the active one), :mod:`.archive` (safe zip
uploads), :mod:`.jobs` (one background training per server) and :mod:`.train_worker` (the
training process it starts). Like the rest of ``fer/``, nothing here imports Streamlit.
"""
