"""The syncplan runtime: executes compiled plans.

From the compiler it imports only the plan model, ``compiler.plan``; compiling a
spec is the job of the command line above it.
"""
