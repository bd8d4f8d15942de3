"""A GTPyhop-style domain module, as a user would write it, for the service tests (`import gtpyhop`)."""

import gtpyhop

the_domain = gtpyhop.Domain("service_switches")


def flip(state, switch):
    state.on[switch] = not state.on[switch]
    return state


def m_turn_on(state, switch):
    if not state.on[switch]:
        return [("flip", switch)]
    return []


def m_forever(state):
    return [("spin",)]


gtpyhop.declare_actions(flip)
gtpyhop.declare_task_methods("turn_on", m_turn_on)
gtpyhop.declare_task_methods("spin", m_forever)
