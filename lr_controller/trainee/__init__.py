"""The trainee side: data, the digits builder, a training run, schedules, the toy problem."""
