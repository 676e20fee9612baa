"""Operations: the local service stack, migrations and the `flashgate` command line."""
