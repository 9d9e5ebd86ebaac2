"""Equal Rest: the sanctuary's power budget shared max-min fairly (water-filling).

Every bed runs the same computation on the same beacon data (each bed's demand, whether
it is fresh) and so arrives at the same grants; a bed caps its own drive to its grant.
A peer whose demand is unknown or stale is assumed to draw its worst case, so whatever
it really draws, the sum of actual draws stays within the budget.

Water-filling: the known beds' demands are met from the smallest up; when the rest of the
budget cannot meet the others in full, they all get the same level, the largest whole
number of watts that fits. Watts left over by that rounding go one each to the beds at
the level in bed id order, so the result depends on the data, never on its order.
"""


def grants(budget_w, demands, worst_case_w):
    """demands: [(bed_id, demand_w, fresh)]; return {bed_id: grant_w}. A stale bed's
    "grant" is the worst case reserved for it, which the budget pays first."""
    result = {}
    left = budget_w
    known = []
    for bed_id, demand_w, fresh in demands:
        if fresh:
            known.append((min(max(demand_w, 0), worst_case_w), bed_id))
        else:
            result[bed_id] = worst_case_w
            left -= worst_case_w
    left = max(left, 0)
    known.sort()
    waiting = len(known)
    level = 0
    for demand_w, _ in known:  # smallest first: met in full while the even share covers it
        if demand_w * waiting > left:
            level = left // waiting
            break
        left -= demand_w
        waiting -= 1
    else:
        level = None  # every demand met
    for demand_w, bed_id in known:
        result[bed_id] = demand_w if level is None or demand_w <= level else level
    if level is not None:  # the rounding's spare watts, one each, by bed id
        capped = sorted(bed_id for demand_w, bed_id in known if demand_w > level)
        for bed_id in capped[: left - level * waiting]:
            result[bed_id] += 1
    return result
