"""The Textual app: Config, Dashboard, Confusion (+ drilldown) and Runs screens.

It reads events and run stores and never trains by itself: training goes through
:mod:`cifartui.session` in a thread worker, and torch is imported only there.
"""
