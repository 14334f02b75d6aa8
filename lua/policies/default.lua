-- The default policy: answer and hand the caller to the operator.
call.answer()
call.transfer("operator", "XML", "default")
