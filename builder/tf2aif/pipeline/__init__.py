"""The host-side flow: manifest -> resolve -> plan -> bake -> build -> record, publish."""
