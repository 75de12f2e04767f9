"""Compile mode's parts: the strategies of ``compile`` (:mod:`.step`) and ``compile+graph`` (:mod:`.captured`), how a
step is compiled whole (:mod:`.whole`), the check against eager (:mod:`.check`), the Inductor pass that removes the
double backward's zero branches (:mod:`.zero_branches`) and the optimizer's update inside the compiled graph
(:mod:`.optimizer_update`)."""
