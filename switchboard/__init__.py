"""Switchboard: a self-hosted backend for OpenAI ChatKit.

This package holds what every process shares: configuration, typed errors,
the principal, the gRPC runtime, migrations, the embedded servers and the CLI.
Generated protobuf code lives under ``switchboard.api`` and is never edited.
"""
