"""Local fakes of a CRM and a project tool, and the closed-won demo that runs against them."""
