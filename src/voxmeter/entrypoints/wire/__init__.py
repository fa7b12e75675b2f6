"""What every entrypoint shares about the wire: decoding uploads, the error table.

Nothing here imports a server framework, so the client can use the error table too.
"""
