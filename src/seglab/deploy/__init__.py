"""Deployment: ``seglab serve`` (an ASGI app on uvicorn), its loopback load test, and ``seglab bench``.

:mod:`seglab.deploy.predictors` puts a bundle (onnxruntime) and a run (torch) behind one interface;
:mod:`seglab.deploy.server` is the HTTP app; :mod:`seglab.deploy.loadtest` drives it with concurrent clients
on 127.0.0.1; :mod:`seglab.deploy.bench` measures CPU latency per backend.
"""
