"""`imagent serve`: a Gradio web app over the same `agent.chat.Session` API and store as `imagent chat`.

    tabs.py      one browser tab's state (its Session, a lock) and the server's settings
    views.py     what a tab shows, computed from the Session: pure data, no Gradio
    handlers.py  what each button does: Session calls, returning a View
    masks.py     masks from the brush layer or a detector (face, subject, sky, colour)
    layout.py    the Gradio Blocks page and its wiring; launch()

Only layout.py imports gradio; the rest is tested without a browser (tests/web/).
"""
