"""Closed-loop scenarios shared by evaluation and finetuning: the demonstrator's env with a held
command, push scale and contact model (``env``), the harness that runs each controller on it
(``harness``), episode metrics (``metrics``) and success rules (``outcomes``)."""
