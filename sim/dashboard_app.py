"""The Solara app of the classroom dashboard (run by ``loyalty-sim dashboard``; see :mod:`sim.dashboard`).

Importing this module builds the dashboard's model and page, so only the Solara server
imports it."""

from sim.dashboard import make_page

page = make_page()
