"""Who may call which route (API.md "Security"). Each view names one of these.

No credentials at all -> 401 ``not_authenticated``; credentials that do not cover the route -> 403
``forbidden`` (with no data). Operators (staff, or local anonymous mode from loopback) may do anything.
"""

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from seedproject.auth import Principal, request_principal


class _PrincipalPermission(BasePermission):
    message = "These credentials do not allow this."

    def has_permission(self, request: Request, view: Any) -> bool:
        principal = request_principal(request)
        if principal is None:
            return False  # DRF answers 401, since an authenticator offers a WWW-Authenticate header
        return self.allows(principal, request, view)

    def allows(self, principal: Principal, request: Request, view: Any) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError


class Operator(_PrincipalPermission):
    """Staff, or local anonymous mode."""

    message = "Only operators (staff) may do this."

    def allows(self, principal: Principal, request: Request, view: Any) -> bool:
        return principal.is_operator


class AnyPrincipal(_PrincipalPermission):
    """Anyone the cluster knows: an employee, an instance, the enrollment token, an operator."""

    def allows(self, principal: Principal, request: Request, view: Any) -> bool:
        return True


class Enroller(_PrincipalPermission):
    """Registering employees and instances: the enrollment token, or an operator."""

    message = "Registering needs the cluster's enrollment token (Authorization: Bearer ...) or a staff account."

    def allows(self, principal: Principal, request: Request, view: Any) -> bool:
        return principal.is_operator or principal.kind == "enrollment"


class EmployeeSelf(_PrincipalPermission):
    """The employee named in the URL (its own token), or an operator."""

    message = "An employee's token only opens that employee's own inbox, stats, connections and conversations."

    def allows(self, principal: Principal, request: Request, view: Any) -> bool:
        return principal.acts_for_employee(view.kwargs.get("employee_id", ""))


class ReadAnyWriteEmployeeSelf(EmployeeSelf):
    """Reading is for anyone the cluster knows; changing is for the employee itself or an operator."""

    def allows(self, principal: Principal, request: Request, view: Any) -> bool:
        return request.method in SAFE_METHODS or super().allows(principal, request, view)


class ReadAnyWriteInstanceSelf(_PrincipalPermission):
    """Reading is for anyone the cluster knows; changing is for the instance itself (its token) or staff."""

    message = "Only the instance itself (its token) or staff may change or deregister it."

    def allows(self, principal: Principal, request: Request, view: Any) -> bool:
        return request.method in SAFE_METHODS or principal.acts_for_instance(view.kwargs.get("instance_id", ""))


class InstanceSelf(ReadAnyWriteInstanceSelf):
    """The instance itself (its token), or staff."""

    def allows(self, principal: Principal, request: Request, view: Any) -> bool:
        return principal.acts_for_instance(view.kwargs.get("instance_id", ""))


class ReadAnyWriteOperator(_PrincipalPermission):
    """Reading is for anyone the cluster knows; changing is for operators."""

    message = "Only operators (staff) may change this."

    def allows(self, principal: Principal, request: Request, view: Any) -> bool:
        return request.method in SAFE_METHODS or principal.is_operator


class ConversationMember(_PrincipalPermission):
    """A participant of the conversation in the URL, acting as itself; or an operator."""

    message = "Only the conversation's participants may read or post to it, each as itself."

    def allows(self, principal: Principal, request: Request, view: Any) -> bool:
        if principal.is_operator:
            return True
        if principal.kind != "employee":
            return False
        from collaboration.selectors import conversation_has_member

        if request.method not in SAFE_METHODS:
            sender = request.data.get("sender_id") if isinstance(request.data, dict) else None
            if sender is not None and sender != principal.employee_id:
                return False
        return conversation_has_member(
            conversation_id=view.kwargs.get("conversation_id"), employee_id=principal.employee_id
        )
